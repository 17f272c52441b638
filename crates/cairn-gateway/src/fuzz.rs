//! Entry points for Cairn's fuzz targets (`crates/cairn-fuzz`; doc-hidden, not part of the API): a session
//! request's body as `POST /sessions/create` reads it, and the API key list and key file an operator gives.

use std::path::Path;

use crate::api::parse_session_request;
use crate::config::ApiKeys;
use crate::store::is_uuid;

/// A session request body: the JSON, the image id, then the ids of its input and assumption uploads checked
/// the way the route checks them before looking them up.
pub fn session_request(data: &[u8]) -> Result<(), String> {
    let (req, img) = parse_session_request(data).map_err(|e| format!("{e:?}"))?;
    assert!(img.len() == 64 && img.chars().all(|c| c.is_ascii_hexdigit()));
    if !is_uuid(&req.input) {
        return Err(format!("input {:?} is not an upload id", req.input));
    }
    if let Some(a) = req.assumptions.iter().find(|a| !is_uuid(a)) {
        return Err(format!("assumption {a:?} is not an upload id"));
    }
    Ok(())
}

/// A key file (TOML), then the same text as a `name:key,...` list.
pub fn api_keys(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let list = ApiKeys::parse_list(text);
    let file = ApiKeys::from_toml(text, Path::new("fuzz.toml")).map_err(|e| e.to_string());
    list.map_err(|e| e.to_string()).or(file).map(|_| ())
}

/// A session request as the stock Bonsai client sends it, with assumptions and a cycle limit.
pub fn seed_session_requests() -> Vec<Vec<u8>> {
    let img = "c3fc839203e4805d99c3ee53ad2caecfaddab4a5e6a9aae1802460622a73807f";
    let id = "0f9c2a4e-5b1d-4c8e-9a7f-3e2d1c0b9a88";
    vec![
        format!(r#"{{"img":"{img}","input":"{id}","assumptions":[],"execute_only":false,"exec_cycle_limit":null}}"#)
            .into_bytes(),
        format!(r#"{{"img":"{}","input":"{id}","assumptions":["{id}"],"execute_only":true,"exec_cycle_limit":1000000}}"#, img.to_uppercase())
            .into_bytes(),
    ]
}

/// A key file and a key list.
pub fn seed_api_keys() -> Vec<Vec<u8>> {
    vec![
        b"[[key]]\nname = \"alice\"\nkey = \"a long random string\"\nmax_sessions = 4\nmax_upload_mb = 256\n\n[[key]]\nname = \"bob\"\nkey = \"another-long-key\"\n".to_vec(),
        b"alice:secret-a, bob:secret-b,lonely".to_vec(),
    ]
}
