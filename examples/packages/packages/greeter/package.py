# The example program: links libgreet and runs greeter-banner (a run dependency) by name.
import os

from spack.package import *

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sources")


class Greeter(Package):
    """Prints libgreet's greeting, then runs the greeter-banner script."""

    homepage = "https://example.org/spacktainerizah"
    url = "file://" + os.path.normpath(os.path.join(SOURCES, "greeter-1.0.tar.gz"))

    version("1.0", sha256="398627d707d319efd73341bc868f8f6102ba9ee2446cee767f1408d3c6cfdc08")

    depends_on("c", type="build")
    depends_on("greetlib")
    depends_on("greeter-banner", type="run")

    def install(self, spec, prefix):
        mkdirp(prefix.bin)
        lib = spec["greetlib"].prefix
        cc = Executable(os.environ["CC"])
        cc(
            "-o",
            join_path(prefix.bin, "greeter"),
            "greeter.c",
            "-I" + lib.include,
            "-L" + lib.lib,
            "-Wl,-rpath," + lib.lib,
            "-lgreet",
        )
