//! Reading one key of a Secret from the cluster, with the failure named for the condition.

use super::{Context, Error};
pub use crate::resolve::Problem as Missing;

/// The text of `key` in Secret `name`, or why it is not there. Never logs the value.
pub async fn secret_text(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
    field: &str,
) -> Result<Result<String, Missing>, Error> {
    Ok(crate::resolve::secret_text(&ctx.objects(), namespace, name, key, field).await?)
}
