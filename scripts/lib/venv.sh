# Sourced by scripts: create .venv and install the package with its test extras, once per
# change of pyproject.toml (a stamp holds its hash), so a second run installs nothing.
ensure_venv() {
  local root stamp want
  root=$(pwd)
  stamp=.venv/.installed
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "venv: installing ci-toolkit[test] into .venv" >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$root[test]"
  echo "$want" >"$stamp"
}
