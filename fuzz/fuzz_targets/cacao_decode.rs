//! CACAO DAG-CBOR decoding must never panic; a decoded CACAO keeps its exact bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinycloud_auth::cacao::Cacao;

fuzz_target!(|data: &[u8]| {
    if let Ok(cacao) = Cacao::from_bytes(data) {
        assert_eq!(cacao.as_bytes(), data);
        let _ = cacao.verify();
        let _ = tinycloud_auth::token::Delegation::from_cacao(cacao);
    }
});
