# The names of the flake's checks, on any system, read without nixpkgs:
# scripts/check-nix-twins calls the flake's outputs with stand-in inputs and forces only
# the attribute names of `checks`, never a value, so nothing is fetched or built.
let
  lib = {
    inherit (builtins) mapAttrs;
    optionalAttrs = condition: attrs: if condition then attrs else { };
  };
  outputs = (import ../flake.nix).outputs {
    self = { };
    nixpkgs = { inherit lib; };
    crane = { };
    rust-overlay = { };
    advisory-db = { };
  };
in
builtins.attrNames (
  builtins.foldl' (all: checks: all // checks) { } (builtins.attrValues outputs.checks)
)
