//! No authentication at all: every request passes (the conformance suite's registry).

use super::{Ctx, Profile};
use crate::auth::Scope;
use async_trait::async_trait;
use axum::response::Response;
use http::request::Parts;

#[derive(Debug, Default)]
pub struct Open;

#[async_trait]
impl Profile for Open {
    fn name(&self) -> &str {
        "open/1"
    }

    fn everything_is_public(&self) -> bool {
        true
    }

    async fn authorize(
        &self,
        ctx: &mut Ctx,
        parts: &Parts,
        _scope: Option<&Scope>,
    ) -> Result<(), Response> {
        ctx.auth = super::bearer::describe(&crate::auth::Presented::from_headers(&parts.headers));
        ctx.auth.verdict = Some("open".into());
        Ok(())
    }
}
