//! Step `kubeconfig`: the admin kubeconfig, written with mode 0600 to `--kubeconfig` (merged)
//! or to the default path for the environment.

use std::path::PathBuf;

use super::Context;
use crate::providers::{Kubeconfig, Provider};

pub const NAME: &str = "kubeconfig";

/// Writes the environment's kubeconfig; returns it and where it went.
///
/// # Errors
/// The provider's; I/O errors naming the file.
pub(crate) async fn write(ctx: &Context<'_>) -> Result<(Kubeconfig, PathBuf), crate::Error> {
    let name = ctx.name;
    let kc = ctx.provider.kubeconfig(name).await?.renamed(name);
    let path = match ctx.opts.kubeconfig.as_deref() {
        Some(p) => {
            kc.merge_into(p)?;
            p.to_path_buf()
        }
        None => {
            let p = crate::engine::default_kubeconfig_path(name)?;
            kc.write_to(&p)?;
            p
        }
    };
    Ok((kc, path))
}
