# Sourced by scripts: create .venv and install the package with its test extras, once per
# change of pyproject.toml (a stamp holds its hash), so a second run installs nothing.
ensure_venv() {
  local root stamp want
  root=$(pwd)
  stamp=.venv/.installed
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    compile_package
    return 0
  fi
  echo "venv: installing ci-toolkit[test] into .venv" >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$root[test]"
  echo "$want" >"$stamp"
  compile_package
}

# An editable install has no bytecode, and with PYTHONDONTWRITEBYTECODE=1 (set on some
# machines and CI images) Python never writes any: every ci-toolkit process would compile
# ~90 modules from source (~50 ms), which a wheel installed by pip never does (pip compiles at
# install time). Compile like pip does; up-to-date files are skipped (~40 ms for the tree), and
# __pycache__ is ignored by git.
compile_package() {
  .venv/bin/python -m compileall -q src/ci_toolkit >/dev/null
}
