#!/usr/bin/env bash
# Builds dist/camguard_VERSION_ARCH.deb from the PyInstaller bundle (dist/camguard, made by
# `make bundle`) with dpkg-deb alone: no debhelper, no fakeroot (--root-owner-group).
#
#   /opt/camguard/                      the bundle (its own Python and Qt)
#   /usr/bin/camguard                   -> /opt/camguard/camguard
#   /usr/libexec/camguard/camguard-helper    privileged helper (root 0755, python3 -I)
#   /usr/share/polkit-1/actions/org.camguard.helper.policy
#   /usr/share/camguard/udev/72-camguard-block.rules   inactive template (the helper copies it)
#   /usr/share/applications/camguard.desktop, /usr/share/icons/hicolor/scalable/apps/camguard.svg
#   /etc/xdg/autostart/camguard.desktop       conffile: the tray at every login
#   /etc/camguard/policy.toml                 conffile: example policy, all commented out
#   /usr/lib/systemd/system/camguard.service  only if resources/systemd/camguard.service exists
#   /usr/share/man/man1/camguard.1.gz         generated from the program's own --help
#
# Environment: PYTHON (runs make_manpage.py; camguard must import), COMP (dpkg-deb
# compressor: zstd by default, fast; xz is 25% smaller, 30x slower, and the one dpkg older
# than Debian 12 reads), BUNDLE (default dist/camguard), OUT (default dist).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-.venv/bin/python}
COMP=${COMP:-zstd}
BUNDLE=${BUNDLE:-dist/camguard}
OUT=${OUT:-dist}
HERE=packaging/linux
STAGE=build/deb/root

die() { echo "build_deb: $*" >&2; exit 1; }
[ -x "$BUNDLE/camguard" ] || die "no bundle at $BUNDLE (run: make bundle)"
for tool in dpkg-deb objdump gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/system-deps.sh packaging)"
done

# The bundle must run before it is packaged; its answer is also the package version.
VERSION=$("$BUNDLE/camguard" --version | awk '{print $2}')
[ -n "$VERSION" ] || die "the bundle did not print its version"
ARCH=$(dpkg --print-architecture)
HELPER_SRC=camguard/platform/linux/helper.py
[ "$(head -n1 "$HELPER_SRC")" = "#!/usr/bin/python3 -I" ] \
  || die "$HELPER_SRC must start with '#!/usr/bin/python3 -I' (isolated mode, system python)"

rm -rf build/deb
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/libexec/camguard" \
  "$STAGE/usr/share/polkit-1/actions" "$STAGE/usr/share/camguard/udev" \
  "$STAGE/usr/share/applications" "$STAGE/usr/share/icons/hicolor/scalable/apps" \
  "$STAGE/usr/share/man/man1" "$STAGE/usr/share/doc/camguard" \
  "$STAGE/etc/xdg/autostart" "$STAGE/etc/camguard"

cp -a "$BUNDLE" "$STAGE/opt/camguard"
ln -s /opt/camguard/camguard "$STAGE/usr/bin/camguard"
install -m 0755 "$HELPER_SRC" "$STAGE/usr/libexec/camguard/camguard-helper"
install -m 0644 resources/org.camguard.helper.policy "$STAGE/usr/share/polkit-1/actions/"
install -m 0644 resources/udev/72-camguard-block.rules "$STAGE/usr/share/camguard/udev/"
install -m 0644 "$HERE/camguard.desktop" "$STAGE/usr/share/applications/camguard.desktop"
install -m 0644 "$HERE/camguard-autostart.desktop" "$STAGE/etc/xdg/autostart/camguard.desktop"
install -m 0644 resources/icons/idle.svg \
  "$STAGE/usr/share/icons/hicolor/scalable/apps/camguard.svg"

# The example policy: every setting and rule commented out, so installing the package
# manages nothing until an administrator says so.
{
  echo "# camguard managed policy: installed by the camguard package as an EXAMPLE. Every"
  echo "# line is commented out, so nothing is managed until you uncomment what you want."
  echo "# Keep this file owned by root, mode 0644 (camguard warns otherwise)."
  echo "#"
  sed -e 's/^\([^#].*\)$/# \1/' resources/policy.example.toml
} > "$STAGE/etc/camguard/policy.toml"
chmod 0644 "$STAGE/etc/camguard/policy.toml"

UNIT=resources/systemd/camguard.service
if [ -f "$UNIT" ]; then
  mkdir -p "$STAGE/usr/lib/systemd/system"
  install -m 0644 "$UNIT" "$STAGE/usr/lib/systemd/system/camguard.service"
  echo "build_deb: including the system service unit ($UNIT)"
else
  echo "build_deb: $UNIT does not exist: the package has no systemd unit" >&2
fi

# The man page, from the program's own --help; fails if the bundle's command list differs.
"$PYTHON" "$HERE/make_manpage.py" -o build/deb/camguard.1 --check-command "$BUNDLE/camguard"
gzip -9n -c build/deb/camguard.1 > "$STAGE/usr/share/man/man1/camguard.1.gz"

cat > "$STAGE/usr/share/doc/camguard/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: camguard

Files: *
Copyright: camguard developers
License: MIT

Files: opt/camguard/_internal/*
Comment: Bundled by PyInstaller: CPython (PSF-2.0), Qt 6 and PySide6 (LGPL-3.0),
 OpenCV (Apache-2.0), numpy (BSD-3-Clause), PortAudio (MIT), psutil (BSD-3-Clause),
 pulsectl (MIT), jeepney (MIT), platformdirs (MIT), inotify_simple (BSD-2-Clause) and the
 libraries they link; their license files are in the bundle's *.dist-info folders.
EOF

SHLIB_DEPENDS=$(python3 "$HERE/shlib_depends.py" "$STAGE/opt/camguard")
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
    -e "s/@SHLIB_DEPENDS@/$SHLIB_DEPENDS/" "$HERE/debian/control.in" > "$STAGE/DEBIAN/control"
install -m 0644 "$HERE/debian/conffiles" "$STAGE/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$HERE/debian/$script" "$STAGE/DEBIAN/$script"
done

mkdir -p "$OUT"
DEB="$OUT/camguard_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"$COMP" --build "$STAGE" "$DEB" >/dev/null
echo "build_deb: $DEB ($(du -h "$DEB" | cut -f1), installed $((INSTALLED_SIZE / 1024)) MiB)"
echo "build_deb: Depends: python3, $SHLIB_DEPENDS"
