# Shared helpers for the project's scripts: idempotent installs and step
# banners. Sourced, not run.

step() {
    printf '\n==> %s\n' "$*"
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# Installs Debian packages that are not installed yet; does nothing (and needs
# no network) when all are present.
ensure_debian_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Adds rustup components (rustfmt, clippy) when missing.
ensure_rustup_components() {
    local component
    for component in "$@"; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
            rustup component add "$component"
        fi
    done
}
