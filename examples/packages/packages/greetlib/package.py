# The example C library: libgreet.so and greet.h, from a source tarball in this repository.
import os

from spack.package import *

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sources")


class Greetlib(Package):
    """A tiny C library with one function, greet()."""

    homepage = "https://example.org/spacktainerizah"
    url = "file://" + os.path.normpath(os.path.join(SOURCES, "greetlib-1.0.tar.gz"))

    version("1.0", sha256="7a9b942d520c840452cb3ac87c5746657c40260646776042698105d6936f909a")

    depends_on("c", type="build")

    def install(self, spec, prefix):
        mkdirp(prefix.lib)
        mkdirp(prefix.include)
        cc = Executable(os.environ["CC"])
        cc("-shared", "-fPIC", "-o", join_path(prefix.lib, "libgreet.so"), "greet.c")
        install("greet.h", prefix.include)
