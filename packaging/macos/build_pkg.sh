#!/bin/bash
# Build camguard.app and dist/camguard-VERSION.pkg ON A MAC (packaging/macos/BUILD.md).
# NEVER RUN: written on Linux; only `bash -n` has checked it. Signs, notarises and staples
# when the identities are given, else builds an unsigned .pkg and says so.
#
#   CAMGUARD_CODESIGN_IDENTITY="Developer ID Application: NAME (TEAMID)"   (optional)
#   CAMGUARD_INSTALLER_IDENTITY="Developer ID Installer: NAME (TEAMID)"    (optional)
#   CAMGUARD_NOTARY_PROFILE=camguard-notary   (optional; `xcrun notarytool store-credentials`)
#   packaging/macos/build_pkg.sh
set -euo pipefail

[ "$(uname -s)" = Darwin ] || { echo "build_pkg.sh: run this on macOS" >&2; exit 2; }
cd "$(dirname "$0")/../.."
HERE=packaging/macos
APP=dist/camguard.app
SIGN_APP=${CAMGUARD_CODESIGN_IDENTITY:-}
SIGN_PKG=${CAMGUARD_INSTALLER_IDENTITY:-}
NOTARY=${CAMGUARD_NOTARY_PROFILE:-}

# 1. The app: the same PyInstaller spec as Linux and Windows. CAMGUARD_CODESIGN_IDENTITY
#    makes PyInstaller sign every nested binary with the hardened runtime as it collects it.
pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller \
  packaging/pyinstaller/camguard.spec
[ -d "$APP" ] || { echo "build_pkg.sh: $APP was not made" >&2; exit 1; }
VERSION=$("$APP/Contents/MacOS/camguard" --version | awk '{print $2}')

# 2. Sign the app itself, outside-in after PyInstaller signed the inside (not --deep).
if [ -n "$SIGN_APP" ]; then
  codesign --force --timestamp --options runtime \
    --entitlements "$HERE/entitlements.plist" --sign "$SIGN_APP" "$APP"
  codesign --verify --deep --strict --verbose=2 "$APP"
else
  echo "build_pkg.sh: CAMGUARD_CODESIGN_IDENTITY unset: the app is NOT signed" >&2
fi

# 3. The payload: the app, the tray's LaunchAgent and the service's LaunchDaemon (root:wheel
#    0644, as launchd requires; --ownership recommended makes them root's). The daemon is
#    off (Disabled) until an administrator runs `launchctl enable system/org.camguard.service`.
ROOT=build/pkgroot
rm -rf "$ROOT" && mkdir -p "$ROOT/Applications" "$ROOT/Library/LaunchAgents" \
  "$ROOT/Library/LaunchDaemons"
ditto "$APP" "$ROOT/Applications/camguard.app"
install -m 0644 "$HERE/org.camguard.agent.plist" "$ROOT/Library/LaunchAgents/"
install -m 0644 "$HERE/org.camguard.service.plist" "$ROOT/Library/LaunchDaemons/"
pkgbuild --root "$ROOT" --install-location / --identifier org.camguard.pkg \
  --version "$VERSION" --ownership recommended build/camguard-component.pkg

OUT="dist/camguard-$VERSION.pkg"
if [ -n "$SIGN_PKG" ]; then
  productbuild --package build/camguard-component.pkg --sign "$SIGN_PKG" "$OUT"
else
  productbuild --package build/camguard-component.pkg "$OUT"
  echo "build_pkg.sh: CAMGUARD_INSTALLER_IDENTITY unset: $OUT is NOT signed" >&2
fi

# 4. Notarise and staple (needs both signatures).
if [ -n "$NOTARY" ] && [ -n "$SIGN_APP" ] && [ -n "$SIGN_PKG" ]; then
  xcrun notarytool submit "$OUT" --keychain-profile "$NOTARY" --wait
  xcrun stapler staple "$OUT"
  xcrun stapler validate "$OUT"
  spctl --assess --type install --verbose "$OUT"
else
  echo "build_pkg.sh: not notarised (needs both identities and CAMGUARD_NOTARY_PROFILE)" >&2
fi
echo "$OUT"
