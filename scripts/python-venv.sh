#!/usr/bin/env bash
# A venv of Python VERSION (e.g. 3.12) holding the library's dependencies, the test tools and the fake providers,
# at constraints.txt's versions; cached outside the checkout by its inputs. Prints the venv's python on stdout; everything else goes to
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

# The library's dependencies, the [test] extra and the [demo] extra (the fake providers the provider-call tests
# talk to are FastAPI apps), read from pyproject.toml (tomllib: Python 3.11+), the project's own extras they name
# resolved. They, the pins and the interpreter are the venv's key: editing another part of pyproject.toml keeps it.
read_requirements='
import re
import sys
import tomllib

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
own = re.compile(re.escape(project["name"]) + r"\[([a-z,]+)\]$", re.IGNORECASE)


def requirements(names, seen=set()):
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        for requirement in extras[name]:
            match = own.match(requirement)
            if match:
                yield from requirements(match.group(1).split(","))
            else:
                yield requirement


print("\n".join(dict.fromkeys([*project["dependencies"], *requirements(["test", "demo"])])))
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
