# The example script: installed as bin/greeter-banner, found on PATH by greeter at run time.
import os

from spack.package import *

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sources")


class GreeterBanner(Package):
    """A shell script greeter runs by name."""

    homepage = "https://example.org/spacktainerizah"
    url = "file://" + os.path.normpath(os.path.join(SOURCES, "greeter-banner-1.0.tar.gz"))

    version("1.0", sha256="6c4931ad0431c20293f0733ec18b7e2b1a92d179fcc425b4bc5502c7e44800c6")

    def install(self, spec, prefix):
        mkdirp(prefix.bin)
        install("greeter-banner", prefix.bin)
        set_executable(join_path(prefix.bin, "greeter-banner"))
