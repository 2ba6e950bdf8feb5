#!/usr/bin/env python3
"""Checks editors/helix/languages.toml: every language it lists keeps Helix's
default language servers (in Helix's order, first) and adds locode last, and
it covers the languages locode serves.

    python3 editors/helix/test_languages.py

Prints one line per check and "N passed, M failed"; exits non-zero on a failure.
"""
import pathlib
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    sys.exit("error: Python 3.11 or later is needed (tomllib)")

# `language-servers` of these languages in Helix's own languages.toml
# (helix-editor/helix master, commit 0003a117b46146bc72dd2858503b41f4bf6501ad).
HELIX_DEFAULTS = {
    "python": ["ty", "ruff", "jedi", "pylsp", "zuban"],
    "rust": ["rust-analyzer"],
    "typescript": ["typescript-language-server"],
    "tsx": ["typescript-language-server"],
    "javascript": ["typescript-language-server"],
    "jsx": ["typescript-language-server"],
    "go": ["gopls", "golangci-lint-lsp"],
    "c": ["clangd"],
    "cpp": ["clangd"],
    "java": ["jdtls"],
}

# Helix's names of the languages the Neovim plugin starts locode for.
SERVED = ["python", "rust", "typescript", "tsx", "javascript", "jsx", "go", "c", "cpp", "java"]


def server_name(entry):
    # An entry is a name or a table { name = "...", only-features = [...] }.
    return entry if isinstance(entry, str) else entry["name"]


def main():
    path = pathlib.Path(__file__).with_name("languages.toml")
    config = tomllib.loads(path.read_text())
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok {what}")
        else:
            failed += 1
            print(f"FAIL {what}")

    locode = config.get("language-server", {}).get("locode", {})
    check(locode.get("args") == ["serve"] and locode.get("command", "").endswith("locode"),
          f"[language-server.locode] runs `locode serve`: {locode}")
    languages = {lang["name"]: lang for lang in config.get("language", [])}
    check(len(languages) == len(config.get("language", [])), "each language listed once")
    for name in SERVED:
        check(name in languages, f"{name} is listed")
    for name, lang in languages.items():
        servers = [server_name(e) for e in lang.get("language-servers", [])]
        defaults = HELIX_DEFAULTS.get(name)
        if defaults is None:
            check(False, f"{name}: no Helix defaults recorded in this test")
            continue
        check(servers[: len(defaults)] == defaults,
              f"{name}: Helix's defaults {defaults} kept first, in order (got {servers})")
        check(servers[len(defaults):] == ["locode"], f"{name}: locode added last (got {servers})")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
