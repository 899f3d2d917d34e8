# `nix develop`: the toolchain the build uses, the inputs of the checks, and the tools to
# run the tests and the Nix linters by hand. Cargo builds for the host here (no musl
# target is set), as a developer expects. Docker and its Compose plugin come from the
# host: the scripts need the host's running engine anyway, and the docker CLI would not
# find a plugin from the Nix store.
{
  pkgs,
  crate,
  checks,
}:
crate.craneLib.devShell {
  inherit checks;
  # The checks bring crane's installFromCargoBuildLogHook, which makes a
  # postBuildInstallFromCargoBuildLogOutTemp… directory in the working directory when it is
  # sourced (crane issues #997, #1046); a shell installs nothing, so it is switched off.
  doNotPostBuildInstallCargoBinaries = true;
  packages = [
    pkgs.redis
    pkgs.cargo-nextest
    pkgs.cargo-auditable
    pkgs.cargo-cyclonedx
    pkgs.deadnix
    pkgs.nixfmt
  ];
}
