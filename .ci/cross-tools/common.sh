# Sourced by .ci/cross and python/wheels: the tools both use for the other
# systems, each installed or set up when missing, in one place so that both
# scripts build with the very same settings (and so share cargo's builds).
# Expects $root (the repository) and $CARGO_TARGET_DIR.

# Debian packages, installed when any is missing.
need() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# zig, from PyPI's ziglang in a venv under the target folder, for
# .ci/cross-tools/zig-cc. Sets and exports $ZIG and zig's caches.
use_zig() {
    need python3 python3-venv
    local venv=$CARGO_TARGET_DIR/zig-venv
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/python" -c 'import ziglang' 2>/dev/null || "$venv/bin/pip" install -q 'ziglang==0.17.1'
    ZIG=$("$venv/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
    export ZIG ZIG_GLOBAL_CACHE_DIR=$CARGO_TARGET_DIR/zig-cache ZIG_LOCAL_CACHE_DIR=$CARGO_TARGET_DIR/zig-cache
}

# Exports what makes cargo build for macOS on `$1` (aarch64, x86_64) with
# zig cc compiling and linking: the oldest macOS is rustc's default for the
# target (11.0 on arm64, 10.12 on x86_64), told to zig and to cc-rs alike
# (zig's own default is 15.0), and the wheels are tagged with it. The libs
# folder holds a stub libiconv.tbd (rustc links std with -liconv on Apple
# targets; zig ships none, every Mac has the dylib). Sets $macos_vars, the
# names exported, for `unset` after.
macos_env() {
    local arch=$1 version triple=${1}_apple_darwin
    case $arch in
        aarch64) version=11.0 ;;
        x86_64) version=10.12 ;;
        *) return 2 ;;
    esac
    use_zig
    rustup target add "$arch-apple-darwin" >/dev/null 2>&1
    macos_vars=("CC_$triple" "CARGO_TARGET_${triple^^}_LINKER" ZIG_TARGET ZIG_EXTRA_LIBS MACOSX_DEPLOYMENT_TARGET)
    export "CC_$triple=$root/.ci/cross-tools/zig-cc" \
        "CARGO_TARGET_${triple^^}_LINKER=$root/.ci/cross-tools/zig-cc" \
        ZIG_TARGET=$arch-macos.$version ZIG_EXTRA_LIBS=$root/.ci/cross-tools/macos-libs \
        MACOSX_DEPLOYMENT_TARGET=$version
}

# binfmt_misc's entry for qemu-aarch64, registered when missing, as Debian's
# qemu-user-binfmt does where systemd runs: tests and suites that start an
# aarch64 child need it, since the kernel hands the child to qemu only
# through it. Fails where it cannot be registered (it needs root).
aarch64_binfmt() {
    local binfmt=/proc/sys/fs/binfmt_misc
    if [[ ! -e $binfmt/qemu-aarch64 ]]; then
        { [[ -e $binfmt/register ]] || mount -t binfmt_misc binfmt_misc "$binfmt"; } 2>/dev/null &&
            cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register" 2>/dev/null || true
    fi
    [[ -e $binfmt/qemu-aarch64 ]]
}

# A 64-bit wine prefix under the target folder, with a server that stays
# until the script exits. Sets $wine (the wine64 loader) and exports
# WINEPREFIX. wine before 9.0 has no bcryptprimitives.dll, whose ProcessPrng
# Rust's std needs to start: a stub over RtlGenRandom (processprng.c) goes
# into the prefix.
wine_prefix() {
    need mingw-w64 wine wine64
    export WINEPREFIX=$CARGO_TARGET_DIR/wine WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    wine=/usr/lib/wine/wine64
    local system32=$WINEPREFIX/drive_c/windows/system32
    # (Without Debian's 32-bit wine, wineboot fails on syswow64 and says so;
    # the 64-bit prefix is made all the same.)
    [[ -d $system32 ]] || "$wine" wineboot --init >/dev/null 2>&1 || [[ -d $system32 ]]
    [[ -e $system32/bcryptprimitives.dll ]] ||
        x86_64-w64-mingw32-gcc -shared -O2 -o "$system32/bcryptprimitives.dll" \
            "$root/.ci/cross-tools/processprng.c" -ladvapi32
    # A server that stays, started apart, so that no command's output waits
    # on its pipes; any other in this prefix (wineboot's, or one a stopped
    # run left) is ended first, as `wineserver -w` would wait for ever on a
    # persistent one.
    if [[ -z ${wine_server_started:-} ]]; then
        wineserver -k 2>/dev/null || true
        wineserver -w
        wineserver -p
        wine_server_started=1
        trap 'wineserver -k 2>/dev/null || true' EXIT
    fi
}
