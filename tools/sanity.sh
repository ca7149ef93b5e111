#!/usr/bin/env bash
# ansible-test sanity on the collection as Galaxy ships it (galaxy.yml's build_ignore leaves out
# the lab, tests and tooling), without Docker, on the venv's Python. The working tree is built,
# so uncommitted work is checked too.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
dest="$root/build/sanity/ansible_collections/hakit/cluster"
rm -rf "$root/build/sanity"
mkdir -p "$dest"
ANSIBLE_CONFIG="$root/ansible.cfg" ansible-galaxy collection build --force --output-path "$root/build/sanity" "$root" >/dev/null
tar -xzf "$root"/build/sanity/hakit-cluster-*.tar.gz -C "$dest"
rm -f "$dest/MANIFEST.json" "$dest/FILES.json"
cp "$root/galaxy.yml" "$dest/"

# ansible-test bootstraps pip in its venvs with get-pip.py from a host this machine cannot reach;
# hand it a stand-in that installs the same pip from PyPI (tools/get_pip_shim.py).
export HOME="$root/.cache/sanity-home"
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pip_version=$(python3 - <<'PY'
import re, ansible_test._internal.python_requirements as m
print(re.search(r"pip='([0-9.]+)'", open(m.__file__).read()).group(1))
PY
)
mkdir -p "$HOME/.ansible/test/cache"
pip_site=$(python3 -c 'import os, pip; print(os.path.dirname(os.path.dirname(pip.__file__)))')
sed "s|@PIP_SITE@|$pip_site|" "$root/tools/get_pip_shim.py" \
  >"$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

cd "$dest"
git init -q . && git add -A   # ansible-test lists a collection's files through git
ansible-test sanity --python "$pyver" --requirements --color no "$@"
