//! `dingsync crd`: print the CRDs, or write them as files.

use std::path::Path;

/// Print every CRD to stdout, or write one file per CRD into `out_dir`.
pub fn run(out_dir: Option<&Path>) -> anyhow::Result<()> {
    match out_dir {
        None => print!("{}", crate::api::all_crds_yaml()),
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for crd in crate::api::crds() {
                let path = dir.join(crate::api::crd_file_name(&crd));
                std::fs::write(&path, crate::api::crd_yaml(&crd))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
