#!/usr/bin/env bash
# Builds dist/camguard-VERSION-x64.msi on Linux with wixl (msitools), then checks its tables.
#
# THE PAYLOAD IS A STAND-IN. PyInstaller is not a cross-compiler, so Linux cannot make the
# Windows camguard.exe. CI packs the Linux bundle (dist/camguard) under the Windows names
# (camguard.exe, camguard-tray.exe) to prove what Linux can prove: the MSI builds from
# packaging/windows/camguard.wxs, every bundle file lands in the File table, and the
# properties, components, conditions, registry values and upgrade rows are right
# (check_msi.py). Such an MSI must never be shipped. The real one is built on Windows by
# build_on_windows.ps1 from a Windows bundle. If BUNDLE already holds camguard.exe (a
# Windows bundle copied here), it is packed as it is.
#
# Environment: BUNDLE (default dist/camguard), OUT (default dist), PYTHON (runs check_msi.py).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUNDLE=${BUNDLE:-dist/camguard}
OUT=${OUT:-dist}
PYTHON=${PYTHON:-python3}
HERE=packaging/windows
STAGE=build/msi

die() { echo "build_msi: $*" >&2; exit 1; }
for tool in wixl wixl-heat msibuild msiinfo; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/system-deps.sh packaging)"
done

rm -rf "$STAGE"
mkdir -p "$STAGE" "$OUT"
if [ -f "$BUNDLE/camguard.exe" ]; then
  cp -a "$BUNDLE" "$STAGE/payload"
  VERSION=${VERSION:?set VERSION when packing a Windows bundle}
else
  [ -x "$BUNDLE/camguard" ] || die "no bundle at $BUNDLE (run: make bundle)"
  VERSION=$("$BUNDLE/camguard" --version | awk '{print $2}')
  echo "build_msi: STAND-IN payload: the Linux bundle under Windows file names (not shippable)"
  cp -al "$BUNDLE" "$STAGE/payload"  # hard links: no copy of 300 MB
  mv "$STAGE/payload/camguard" "$STAGE/payload/camguard.exe"
  ln "$STAGE/payload/camguard.exe" "$STAGE/payload/camguard-tray.exe"
fi
# An MSI ProductVersion is numbers only (major.minor.build).
MSI_VERSION=$(printf '%s\n' "$VERSION" | grep -oE '^[0-9]+(\.[0-9]+){0,2}') \
  || die "version $VERSION has no numeric major.minor.build"

# Everything except the two executables the .wxs declares itself (shortcut, Run value).
# Symlinks (the Linux bundle's library aliases) are skipped: Windows bundles have none.
(cd "$STAGE/payload" && find . -type f ! -path ./camguard.exe ! -path ./camguard-tray.exe \
   | LC_ALL=C sort) \
  | wixl-heat -p ./ --var var.SourceDir --directory-ref INSTALLDIR --component-group CG.Bundle \
      --win64 > "$STAGE/bundle.wxs"

MSI="$OUT/camguard-$MSI_VERSION-x64.msi"
rm -f "$MSI"
wixl -a x64 -D Version="$MSI_VERSION" -D SourceDir="$STAGE/payload" -D Win64=yes \
  -o "$MSI" "$HERE/camguard.wxs" "$STAGE/bundle.wxs"

# What wixl cannot express, patched into the tables with SQL (the same statements
# build_on_windows.ps1 runs through the Windows Installer API):
#  * component conditions: a policy value is written only when its property is set, and
#    the Run value only when AUTOSTART=1 (wixl crashes on Component/Condition);
#  * SecureCustomProperties: public properties pass to the elevated install only when
#    listed there (wixl ignores Property/@Secure).
SECURE="WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;AUTOSTART;LOCKED;MODE;ALERTDEFAULT"
SECURE="$SECURE;EVENTSFILE;SYSLOG;SYSLOGFACILITY"
condition() {
  msibuild "$MSI" -q "UPDATE \`Component\` SET \`Condition\` = '$2' WHERE \`Component\` = '$1'"
}
condition C.Run 'AUTOSTART="1"'
condition C.Policy.Locked LOCKED
condition C.Policy.Mode MODE
condition C.Policy.AlertDefault ALERTDEFAULT
condition C.Policy.EventsFile EVENTSFILE
condition C.Policy.Syslog SYSLOG
condition C.Policy.SyslogFacility SYSLOGFACILITY
msibuild "$MSI" -q "UPDATE \`Property\` SET \`Value\` = '$SECURE' \
  WHERE \`Property\` = 'SecureCustomProperties'"
#  * ServiceInstall/@Vital: wixl drops msidbServiceInstallErrorControlVital (0x8000), so a
#    service that cannot be installed would not fail the install (1 = SERVICE_ERROR_NORMAL).
msibuild "$MSI" -q "UPDATE \`ServiceInstall\` SET \`ErrorControl\` = 32769 \
  WHERE \`ServiceInstall\` = 'SI.camguard'"

"$PYTHON" "$HERE/check_msi.py" "$MSI" --payload "$STAGE/payload" --version "$MSI_VERSION"
echo "build_msi: $MSI ($(du -h "$MSI" | cut -f1))"
