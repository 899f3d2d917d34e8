# The OCI image: the static worker binary and nothing else (no shell, no libc, no
# /etc/passwd), run as an unprivileged numeric user. `archive` is the file for
# `docker load < result`; `load` streams the same image into Docker without storing it.
#
# `architecture` is the OCI name of the worker's platform ("amd64", "arm64"), which may
# differ from the build machine's; `tag` is the one `docker load` gives it; `revision`
# is the commit built, or null for a tree with uncommitted changes.
{
  pkgs,
  worker,
  architecture,
  tag,
  revision,
}:
let
  inherit (pkgs) lib dockerTools;
  package = (lib.importTOML ../Cargo.toml).package;

  args = {
    # The name Compose runs; a fixed tag, unlike the default (a hash of the inputs).
    name = "counter-worker";
    inherit architecture tag;
    # Gives /bin/counter-worker, a link into the binary's store path, which is the
    # image's only other content. `created` keeps its fixed default: "now" would make
    # every build differ.
    contents = [ worker ];
    config = {
      Entrypoint = [ "/bin/counter-worker" ];
      User = "65532:65532";
      Labels = {
        "org.opencontainers.image.title" = package.name;
        "org.opencontainers.image.description" = package.description;
        "org.opencontainers.image.source" = package.repository;
        "org.opencontainers.image.licenses" = package.license;
        # crane reads it from Cargo.toml, the same version the binary reports.
        "org.opencontainers.image.version" = worker.version;
      }
      // lib.optionalAttrs (revision != null) {
        "org.opencontainers.image.revision" = revision;
      };
    };
  };
in
{
  archive = dockerTools.buildLayeredImage args;

  load = pkgs.writeShellScript "load-counter-worker-image" ''
    set -euo pipefail
    ${dockerTools.streamLayeredImage args} | docker image load
  '';
}
