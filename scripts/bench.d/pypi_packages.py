"""Builds the PyPI benchmark's files and uploads them, as twine does:
PACKAGES projects (bench-pkg-0 ...) of VERSIONS releases (1.0.0 ... 1.0.9)
each, one small wheel per release, the same bytes every run, written into
DIR (which pypiserver serves as it is) and, when URL is given, POSTed to it
as twine's multipart/form-data upload with AUTHORIZATION.

    python3 pypi_packages.py DIR PACKAGES VERSIONS [URL AUTHORIZATION]
"""

import base64
import concurrent.futures
import hashlib
import os
import sys
import urllib.request
import zipfile

FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same bytes every run


def wheel(directory: str, name: str, version: str) -> str:
    """bench_pkg_N-VERSION-py3-none-any.whl, with METADATA, WHEEL and RECORD."""
    dist = name.replace("-", "_")
    path = os.path.join(directory, f"{dist}-{version}-py3-none-any.whl")
    if os.path.exists(path):
        return path
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: benchmark package {name}\nRequires-Python: >=3.8\n\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n",
    }
    record = []
    for file, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{file},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    partial = path + ".partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for file, data in files.items():
            archive.writestr(zipfile.ZipInfo(file, FIXED_TIME), data)
    os.replace(partial, path)
    return path


def upload(url: str, authorization: str, name: str, version: str, path: str) -> None:
    data = open(path, "rb").read()
    boundary = "bench-boundary-7c1e"
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    body = b""
    for field, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'.encode()
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{os.path.basename(path)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": authorization},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> None:
    directory, packages, versions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    url, authorization = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
    os.makedirs(directory, exist_ok=True)

    def one_project(i: int) -> None:
        # One project's releases in order, as a publisher would.
        name = f"bench-pkg-{i}"
        for v in range(versions):
            version = f"1.0.{v}"
            path = wheel(directory, name, version)
            if url:
                upload(url, authorization, name, version, path)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in pool.map(one_project, range(packages)):
            pass


if __name__ == "__main__":
    main()
