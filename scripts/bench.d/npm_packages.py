"""Publishes the npm benchmark's packages to a registry, as `npm publish` does:
PACKAGES packages (bench-pkg-0 …) of VERSIONS versions (1.0.0 … 1.0.9) each,
small tarballs built here, the same bytes for every registry.

    python3 npm_packages.py URL AUTHORIZATION PACKAGES VERSIONS
"""

import base64
import concurrent.futures
import gzip
import hashlib
import io
import json
import sys
import tarfile
import urllib.request


def tarball(name: str, version: str) -> bytes:
    manifest = json.dumps(
        {"name": name, "version": version, "main": "index.js", "license": "MIT",
         "description": f"benchmark package {name}"}
    ).encode()
    index = f"module.exports = {json.dumps(name + '@' + version)};\n".encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, data in (("package/package.json", manifest), ("package/index.js", index)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 499162500  # npm's fixed date: the same bytes every run
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def publish(url: str, authorization: str, name: str, version: str) -> None:
    data = tarball(name, version)
    document = {
        "_id": name,
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "main": "index.js", "dist": {"tarball": f"{url}{name}/-/{name}-{version}.tgz", "shasum": hashlib.sha1(data).hexdigest(), "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}}},
        "_attachments": {
            f"{name}-{version}.tgz": {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(data).decode(),
                "length": len(data),
            }
        },
    }
    request = urllib.request.Request(
        f"{url}{name}", data=json.dumps(document).encode(), method="PUT",
        headers={"Content-Type": "application/json", "Authorization": authorization},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> None:
    url, authorization, packages, versions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if not url.endswith("/"):
        url += "/"

    def one_package(i: int) -> None:
        # One package's versions in order, as a publisher would.
        for v in range(versions):
            publish(url, authorization, f"bench-pkg-{i}", f"1.0.{v}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for done in pool.map(one_package, range(packages)):
            pass


if __name__ == "__main__":
    main()
