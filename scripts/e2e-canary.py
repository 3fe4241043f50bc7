"""Look for a secret key where the end-to-end run left something, through what a plain grep
cannot read: tar archives (tars inside tars too), gzip, bzip2, xz, zstd (Python's
`compression.zstd` or `zstandard` when there, else the `zstd` program) and zip. Docker layers,
Spack's `.spack` tarballs (v2: a tar holding a .tar.gz) and v3 blobs are such archives.

Usage: e2e-canary.py [--private-keys] CANARIES PATH...
         every file under each PATH; prints each hit as path[!member...] and exits 1 on any,
         2 when something could not be searched through. CANARIES: one canary a line, text, or
         `hex:` and the bytes in hex. --private-keys: a file under a `private-keys-v1.d/` (a
         GnuPG home's secret keys) is a hit too.
       e2e-canary.py secret-slice SECRET PUBLIC
         canaries of a secret key: `hex:` and 32 bytes of its secret key material (from
         `gpg --export-secret-keys`, SECRET, binary), and those bytes as hex text (a keyring's
         `private-keys-v1.d` holds them so); checked not to be in the public export, PUBLIC.
"""

import bz2
import gzip
import io
import lzma
import os
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile

CHUNK = 1 << 20
# Zip members are read whole from within another archive; larger ones are not expected.
ZIP_IN_MEMORY = 1 << 30


class Search:
    def __init__(self, canaries, private_keys):
        self.canaries = canaries
        self.overlap = max(len(c) for c in canaries) - 1
        self.private_keys = private_keys
        self.hits = 0
        self.unreadable = 0

    def hit(self, where, what):
        self.hits += 1
        print(f"{where}: {what}", flush=True)

    def cannot(self, where, why):
        self.unreadable += 1
        print(f"cannot search through {where}: {why}", file=sys.stderr, flush=True)

    def plain(self, stream, where):
        """The canaries in a stream's bytes, across chunk boundaries."""
        tail = b""
        found = set()
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            data = tail + chunk
            for canary in self.canaries:
                if canary not in found and canary in data:
                    found.add(canary)
            tail = data[-self.overlap :] if self.overlap else b""
        if found:
            self.hit(where, f"{len(found)} canary string(s)")

    def stream(self, stream, where):
        """A stream by what it holds: an archive or compressed data searched through, else bytes."""
        head = peek(stream, 512)
        whole = Prefixed(head, stream)
        try:
            if head.startswith(b"\x1f\x8b"):
                self.stream(gzip.GzipFile(fileobj=whole, mode="rb"), where)
            elif head.startswith(b"BZh"):
                self.stream(bz2.BZ2File(whole), where)
            elif head.startswith(b"\xfd7zXZ\x00"):
                self.stream(lzma.LZMAFile(whole), where)
            elif head.startswith(b"\x28\xb5\x2f\xfd"):
                self.zstd(whole, where)
            elif len(head) == 512 and head[257:262] == b"ustar":
                self.tar(whole, where)
            elif head.startswith(b"PK\x03\x04"):
                self.zip(whole, where)
            else:
                self.plain(whole, where)
        except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError) as e:
            self.cannot(where, e)

    def tar(self, stream, where):
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                inside = f"{where}!{member.name}"
                header = " ".join([member.name, member.linkname, *member.pax_headers.values()])
                if any(c in header.encode("utf-8", "surrogateescape") for c in self.canaries):
                    self.hit(inside, "canary in the member's header")
                if not member.isfile():
                    continue
                if self.private_keys and "private-keys-v1.d/" in f"/{member.name}":
                    self.hit(inside, "a file in a GnuPG home's private-keys-v1.d")
                data = tar.extractfile(member)
                if data is not None:
                    self.stream(data, inside)

    def zip(self, stream, where):
        if stream.seekable():
            archive = zipfile.ZipFile(stream)
        else:
            data = peek(stream, ZIP_IN_MEMORY + 1)
            if len(data) > ZIP_IN_MEMORY:
                raise OSError("a zip archive over 1 GiB inside another archive")
            archive = zipfile.ZipFile(io.BytesIO(data))
        with archive:
            for info in archive.infolist():
                if not info.is_dir():
                    with archive.open(info) as member:
                        self.stream(member, f"{where}!{info.filename}")

    def zstd(self, stream, where):
        try:
            from compression import zstd  # Python 3.14

            return self.stream(zstd.ZstdFile(stream), where)
        except ImportError:
            pass
        try:
            import zstandard

            return self.stream(zstandard.ZstdDecompressor().stream_reader(stream), where)
        except ImportError:
            pass
        # Neither module: the zstd program, fed from a thread.
        try:
            proc = subprocess.Popen(["zstd", "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except FileNotFoundError:
            raise OSError("zstd data, and no zstd module nor program to read it") from None

        def feed():
            try:
                while chunk := stream.read(CHUNK):
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass
            finally:
                proc.stdin.close()

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            self.stream(proc.stdout, where)
        finally:
            proc.stdout.read()
            feeder.join()
        if proc.wait() != 0:
            raise OSError(f"zstd -dc failed with status {proc.returncode}")

    def path(self, path):
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            for entry in sorted(os.listdir(path)):
                self.path(os.path.join(path, entry))
        elif stat.S_ISREG(info.st_mode):
            if self.private_keys and "/private-keys-v1.d/" in path:
                self.hit(path, "a file in a GnuPG home's private-keys-v1.d")
            with open(path, "rb") as f:
                self.stream(f, path)
        # Links, devices, sockets and pipes hold no bytes of their own.


def peek(stream, n):
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of it."""

    def __init__(self, head, rest):
        self.head = head
        self.rest = rest

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buffer):
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_canaries(path):
    canaries = []
    for line in open(path, "rb").read().splitlines():
        if line.startswith(b"hex:"):
            canaries.append(bytes.fromhex(line[4:].decode()))
        elif line.strip():
            canaries.append(line)
    if not canaries:
        sys.exit(f"no canary in {path}")
    return canaries


def packets(data):
    """(tag, body) of each OpenPGP packet (RFC 4880 section 4.2)."""
    i = 0
    while i < len(data):
        first = data[i]
        if not first & 0x80:
            raise ValueError(f"no OpenPGP packet at byte {i}")
        if first & 0x40:  # new format
            tag, o = first & 0x3F, data[i + 1]
            if o < 192:
                length, i = o, i + 2
            elif o < 224:
                length, i = ((o - 192) << 8) + data[i + 2] + 192, i + 3
            elif o == 255:
                length, i = int.from_bytes(data[i + 2 : i + 6], "big"), i + 6
            else:
                raise ValueError("partial body lengths are not expected in a key export")
        else:
            tag, kind = (first >> 2) & 0x0F, first & 0x03
            size = {0: 1, 1: 2, 2: 4}[kind]
            length = int.from_bytes(data[i + 1 : i + 1 + size], "big")
            i += 1 + size
        yield tag, data[i : i + length]
        i += length


def secret_slice(secret_path, public_path):
    secret = open(secret_path, "rb").read()
    public = open(public_path, "rb").read()
    # A secret-key packet (tag 5) is its public-key packet's body (tag 6) followed by the
    # secret part (RFC 4880 section 5.5.3): the slice comes from past that prefix, skipping
    # the S2K usage octet and the first MPI's length.
    public_body = next(body for tag, body in packets(public) if tag == 6)
    secret_body = next(body for tag, body in packets(secret) if tag == 5)
    if not secret_body.startswith(public_body):
        sys.exit(f"the secret key in {secret_path} does not start with the public key of {public_path}")
    start = len(public_body) + 3 + 16
    piece = secret_body[start : start + 32]
    if len(piece) != 32 or piece in public:
        sys.exit(f"no 32 bytes of secret key material in {secret_path} found only there")
    print(f"hex:{piece.hex()}")
    print(piece.hex().upper())
    print(piece.hex())


def main():
    args = sys.argv[1:]
    if args[:1] == ["secret-slice"] and len(args) == 3:
        return secret_slice(args[1], args[2])
    private_keys = args[:1] == ["--private-keys"]
    if private_keys:
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    search = Search(read_canaries(args[0]), private_keys)
    for path in args[1:]:
        search.path(path)
    if search.hits:
        sys.exit(1)
    if search.unreadable:
        sys.exit(2)


if __name__ == "__main__":
    main()
