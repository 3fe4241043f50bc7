"""Tamper with one package of a copy of a build cache, as someone who can write to the bucket
could, for the end-to-end run: its tarball (one byte changed) or its signed spec file (a space
put into a line of the signed JSON, which stays valid JSON). Layout v2 (`build_cache/`) or v3 (`v3/`,
`blobs/`). Prints the file changed.

Usage: e2e-tamper.py CACHE NAME tarball|spec
"""

import glob
import json
import os
import sys


def one(pattern):
    found = sorted(glob.glob(pattern, recursive=True))
    if len(found) != 1:
        sys.exit(f"expected one file matching {pattern}, found {found}")
    return found[0]


def signed_body(path):
    """The JSON a clear-signed file signs (Spack's spec files and manifests hold no line
    starting with '-', so there is no dash-escaping to undo)."""
    text = open(path, encoding="utf-8").read()
    start = text.index("\n\n") + 2
    return text[start : text.index("\n-----BEGIN PGP SIGNATURE-----")]


def v3_tarball(cache, manifest):
    for record in json.loads(signed_body(manifest))["data"]:
        if "tar" in record["mediaType"]:
            digest = record["checksum"]
            return os.path.join(cache, "blobs", record["checksumAlgorithm"], digest[:2], digest)
    sys.exit(f"{manifest} names no tarball")


def main():
    cache, name, what = sys.argv[1:4]
    if os.path.isdir(os.path.join(cache, "v3")):
        spec = one(f"{cache}/v3/manifests/spec/{name}/{name}-*.spec.manifest.json")
        tarball = v3_tarball(cache, spec)
    else:
        spec = one(f"{cache}/build_cache/*-{name}-*.spec.json.sig")
        tarball = one(f"{cache}/build_cache/**/*-{name}-*.spack")
    path = {"tarball": tarball, "spec": spec}[what]
    data = bytearray(open(path, "rb").read())
    if what == "tarball":
        data[len(data) // 2] ^= 0xFF
    else:
        # Within a line: clear-signing ignores trailing whitespace.
        colon = data.index(b'":', data.index(b"{")) + 2
        data[colon:colon] = b" "
    open(path, "wb").write(data)
    print(path)


if __name__ == "__main__":
    main()
