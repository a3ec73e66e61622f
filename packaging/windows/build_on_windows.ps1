<#
.SYNOPSIS
  Builds the real camguard MSI on Windows: a PyInstaller bundle, then the MSI from
  packaging\windows\camguard.wxs with the WiX Toolset 3 (heat, candle, light).

.DESCRIPTION
  NOT RUN by camguard's CI: there is no Windows machine there. Written from the PyInstaller
  and WiX 3 documentation and mirroring build_msi.sh, which CI does run (with wixl, on a
  Linux stand-in payload). Expect to fix small things the first time it runs.

  camguard/platform/windows (the Windows backend: sensor monitor, Core Audio sessions,
  ConsentStore, kill switch, named pipe, the service host) has never run on Windows; see
  camguard/platform/windows/README.md. The MSI registers the camguard service (manual start,
  LocalSystem: `camguard.exe service --windows-service --admin-group S-1-5-32-544`); WiX 3
  sets its Vital bit itself (wixl does not: build_msi.sh patches it). pywin32, comtypes and
  pycaw come with the package (win32 markers in pyproject.toml); the spec lists the pywin32
  modules the service needs as hidden imports.

  Needs: 64-bit Python 3.11 (python.org or `winget install Python.Python.3.11`), the WiX
  Toolset 3.14 (heat.exe, candle.exe, light.exe on PATH or in $env:WIX\bin), and for signing
  signtool.exe from the Windows SDK. Run from any folder:
    powershell -ExecutionPolicy Bypass -File packaging\windows\build_on_windows.ps1
    ... -SignCertThumbprint <SHA1 of a code-signing certificate in the user's store>

  Output: dist\camguard\ (camguard.exe, camguard-tray.exe, _internal\) and
  dist\camguard-VERSION-x64.msi. Install it silently as IT would (see README "Install"):
    msiexec /i dist\camguard-VERSION-x64.msi /qn /norestart /l*v %TEMP%\camguard.log LOCKED=* ALERTDEFAULT=block
  and remove it with msiexec /x dist\camguard-VERSION-x64.msi /qn.
#>
param(
  [string]$PythonLauncher = "py",
  [string]$PythonVersion = "-3.11",
  [string]$SignCertThumbprint = "",
  [string]$TimestampUrl = "http://timestamp.digicert.com"
)
$ErrorActionPreference = "Stop"
Set-Location (Resolve-Path (Join-Path $PSScriptRoot "..\.."))

function Find-Tool([string]$name) {
  $cmd = Get-Command $name -ErrorAction SilentlyContinue
  if ($cmd) { return $cmd.Source }
  if ($env:WIX -and (Test-Path (Join-Path $env:WIX "bin\$name"))) { return (Join-Path $env:WIX "bin\$name") }
  throw "$name not found: install the WiX Toolset 3.14 (https://wixtoolset.org) or put it on PATH"
}
function Invoke-Checked([string]$exe, [string[]]$arguments) {
  & $exe @arguments
  if ($LASTEXITCODE -ne 0) { throw "$exe failed with exit code $LASTEXITCODE" }
}

# 1. A venv with camguard and PyInstaller (the `packaging` extra), then the bundle from the
#    one spec shared with Linux and macOS. The spec adds camguard-tray.exe (no console) on
#    Windows: the HKLM Run value and the Start-menu shortcut point at it.
Invoke-Checked $PythonLauncher @($PythonVersion, "-m", "venv", ".venv-win")
$py = ".venv-win\Scripts\python.exe"
Invoke-Checked $py @("-m", "pip", "install", "--upgrade", "pip")
Invoke-Checked $py @("-m", "pip", "install", "-e", ".[gui,selftest,packaging]")
Invoke-Checked ".venv-win\Scripts\pyinstaller.exe" @("--noconfirm", "--distpath", "dist",
  "--workpath", "build\pyinstaller", "packaging\pyinstaller\camguard.spec")
$version = ((& dist\camguard\camguard.exe --version) -split " ")[1]
if (-not ($version -match '^\d+(\.\d+){0,2}')) { throw "unexpected version '$version'" }
$msiVersion = $Matches[0]

# 2. Optional Authenticode signatures on the executables (before they go into the MSI).
$signtool = $null
if ($SignCertThumbprint) {
  $signtool = Find-Tool "signtool.exe"
  Invoke-Checked $signtool @("sign", "/sha1", $SignCertThumbprint, "/fd", "SHA256", "/tr",
    $TimestampUrl, "/td", "SHA256", "dist\camguard\camguard.exe", "dist\camguard\camguard-tray.exe")
}

# 3. Harvest _internal\ (everything but the two executables camguard.wxs declares itself)
#    into the component group CG.Bundle, as wixl-heat does on Linux. -ag: component GUIDs
#    derived from each file's path at compile time, so they stay the same across versions.
New-Item -ItemType Directory -Force build\msi | Out-Null
$heat = Find-Tool "heat.exe"
Invoke-Checked $heat @("dir", "dist\camguard\_internal", "-nologo", "-ag", "-sfrag", "-sreg",
  "-scom", "-cg", "CG.Bundle", "-dr", "INSTALLDIR", "-var", "var.InternalDir",
  "-out", "build\msi\bundle.wxs")

# 4. Compile and link (x64, per-machine; the same .wxs wixl builds in CI).
$candle = Find-Tool "candle.exe"
$light = Find-Tool "light.exe"
Invoke-Checked $candle @("-nologo", "-arch", "x64", "-dVersion=$msiVersion",
  "-dSourceDir=dist\camguard", "-dInternalDir=dist\camguard\_internal", "-dWin64=yes",
  "-out", "build\msi\", "packaging\windows\camguard.wxs", "build\msi\bundle.wxs")
$msi = "dist\camguard-$msiVersion-x64.msi"
Invoke-Checked $light @("-nologo", "-out", $msi, "build\msi\camguard.wixobj",
  "build\msi\bundle.wixobj")

# 5. The same table patches build_msi.sh applies with msibuild, through the Windows
#    Installer API: component conditions (a policy value only when its property is set; the
#    Run value only when AUTOSTART=1) and SecureCustomProperties (public properties reach
#    the elevated part of a managed install only when listed).
$secure = "WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;AUTOSTART;LOCKED;MODE;ALERTDEFAULT;" +
          "EVENTSFILE;SYSLOG;SYSLOGFACILITY"
$conditions = [ordered]@{
  "C.Run" = 'AUTOSTART="1"'; "C.Policy.Locked" = "LOCKED"; "C.Policy.Mode" = "MODE";
  "C.Policy.AlertDefault" = "ALERTDEFAULT"; "C.Policy.EventsFile" = "EVENTSFILE";
  "C.Policy.Syslog" = "SYSLOG"; "C.Policy.SyslogFacility" = "SYSLOGFACILITY"
}
$statements = @()
foreach ($c in $conditions.GetEnumerator()) {
  $statements += "UPDATE ``Component`` SET ``Condition`` = '$($c.Value)' WHERE ``Component`` = '$($c.Key)'"
}
$statements += "UPDATE ``Property`` SET ``Value`` = '$secure' WHERE ``Property`` = 'SecureCustomProperties'"
$installer = New-Object -ComObject WindowsInstaller.Installer
$db = $installer.GetType().InvokeMember("OpenDatabase", "InvokeMethod", $null, $installer,
  @((Resolve-Path $msi).Path, 1))  # 1 = msiOpenDatabaseModeTransact
foreach ($sql in $statements) {
  $view = $db.GetType().InvokeMember("OpenView", "InvokeMethod", $null, $db, @($sql))
  $view.GetType().InvokeMember("Execute", "InvokeMethod", $null, $view, $null)
  $view.GetType().InvokeMember("Close", "InvokeMethod", $null, $view, $null)
}
$db.GetType().InvokeMember("Commit", "InvokeMethod", $null, $db, $null)
[System.Runtime.InteropServices.Marshal]::ReleaseComObject($db) | Out-Null

# 6. Sign the MSI last (any table change after signing would break the signature).
if ($signtool) {
  Invoke-Checked $signtool @("sign", "/sha1", $SignCertThumbprint, "/fd", "SHA256", "/tr",
    $TimestampUrl, "/td", "SHA256", "/d", "camguard", $msi)
}
Write-Host "built $msi"
Write-Host "check its tables from Linux or WSL: python3 packaging/windows/check_msi.py $($msi -replace '\\','/')"
