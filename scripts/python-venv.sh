#!/usr/bin/env bash
# A venv of Python VERSION (e.g. 3.12) holding the library's dependencies and the test tools, at constraints.txt's
# versions; cached outside the checkout by its inputs. Prints the venv's python on stdout; everything else goes to
# stderr. The project itself is not installed: the tests run the checkout's code (PYTHONPATH), so checkouts with the
# same dependencies share one venv.
set -euo pipefail
version=${1:?usage: python-venv.sh VERSION}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}

# The interpreter: on PATH if it runs there, else pyenv's installs of that version.
interpreter=""
if "python$version" -c '' 2>/dev/null; then
  interpreter=$(command -v "python$version")
elif command -v pyenv >/dev/null; then
  interpreter=$(ls -d "$(pyenv root)"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -V | tail -1)
fi
if [ -z "$interpreter" ]; then
  echo "python$version not found (on PATH or under pyenv): install it, e.g. pyenv install $version" >&2
  exit 1
fi

# The library's dependencies and the [test] extra, read from pyproject.toml (tomllib: Python 3.11+). They, the pins
# and the interpreter are the venv's key: editing another part of pyproject.toml keeps the venv.
read_requirements='
import sys
import tomllib

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
    if requirement.lower().startswith(project["name"]):
        sys.exit(f"{requirement}: the [test] extra must list packages, not the project'"'"'s own extras")
    print(requirement)
'
requirements=$("$interpreter" -c "$read_requirements" "$root/pyproject.toml")
key=$( (echo "$requirements"; cat "$root/constraints.txt"; "$interpreter" -VV) | sha256sum | cut -c1-16)
venv=$cache/venvs/py$version-$key
if [ -e "$venv/.installed" ]; then echo "$venv/bin/python"; exit 0; fi
# One set-up per key at a time: a parallel caller waits for it instead of installing into the same venv.
mkdir -p "$cache/venvs"
exec 9>"$venv.lock"
flock 9
if [ -e "$venv/.installed" ]; then echo "$venv/bin/python"; exit 0; fi

echo "creating the Python $version venv $venv" >&2
rm -rf "$venv"
"$interpreter" -m venv "$venv"
echo "$requirements" >"$venv/requirements.txt"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q -r "$venv/requirements.txt" -c "$root/constraints.txt" >&2
touch "$venv/.installed"
echo "$venv/bin/python"
