//! The `multipart/form-data` uploads of the native endpoints (twine's and
//! uv's, `dotnet nuget push`'s), read as they stream in: the file part is
//! staged chunk by chunk, and the form as a whole is bounded, since multer
//! holds a part's headers in memory until they end.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::{Stream, StreamExt};

use crate::content;
use crate::error::{Error, Result};

/// The most bytes of a form beside its file (the description and the other
/// metadata fields twine sends).
const MAX_FORM_BESIDE_FILE: u64 = 16 * 1024 * 1024;

/// The form in `body`, each chunk within the stall timeout, the whole
/// within the upload limit and `MAX_FORM_BESIDE_FILE`; `not_a_form` is the
/// refusal of a body that is not one.
pub fn open(
    headers: &HeaderMap,
    body: Body,
    settings: &content::Settings,
    not_a_form: &str,
) -> Result<multer::Multipart<'static>> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| Error::invalid(not_a_form))?;
    let limit = settings.max_upload.saturating_add(MAX_FORM_BESIDE_FILE);
    if crate::http::input::declared_length(headers).is_some_and(|length| length > limit) {
        return Err(too_large(settings));
    }
    let body = crate::http::package_content::stalls_after(body.into_data_stream(), settings.stall);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    Ok(multer::Multipart::with_constraints(
        body,
        boundary,
        constraints,
    ))
}

fn too_large(settings: &content::Settings) -> Error {
    Error::UploadTooLarge {
        limit_mib: settings.max_upload / (1024 * 1024),
    }
}

/// A part's bytes, as staging reads them: a stall keeps its kind, so that
/// it is answered as one, and the form's bound is answered as the upload
/// limit.
pub fn stream(field: multer::Field<'static>) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin {
    field.map(|chunk| chunk.map_err(into_io))
}

fn into_io(error: multer::Error) -> std::io::Error {
    match error {
        multer::Error::StreamSizeExceeded { .. } => std::io::ErrorKind::FileTooLarge.into(),
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => *io,
            Err(other) => std::io::Error::other(other),
        },
        other => std::io::Error::other(other),
    }
}

/// Why the form could not be read, as the client should hear it.
pub fn error(error: multer::Error, settings: &content::Settings) -> Error {
    let io = into_io(error);
    match io.kind() {
        std::io::ErrorKind::TimedOut => Error::UploadStalled {
            seconds: settings.stall.as_secs(),
        },
        std::io::ErrorKind::FileTooLarge => too_large(settings),
        _ => Error::invalid(format!(
            "The upload is not a well-formed multipart/form-data form ({io})."
        )),
    }
}
