# `nix develop`: the toolchain the build uses, the inputs of the checks, and the tools to
# run the tests, the Nix linters and Compose by hand. Cargo builds for the host here
# (no musl target is set), as a developer expects.
{ pkgs, crate, checks }:
crate.craneLib.devShell {
  inherit checks;
  packages = [
    pkgs.redis
    pkgs.cargo-nextest
    pkgs.deadnix
    pkgs.nixpkgs-fmt
    pkgs.docker-compose
  ];
}
