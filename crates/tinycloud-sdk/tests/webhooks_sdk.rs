//! Webhook management through the SDK: register (URL and secret checked), list, delivery
//! history, unregister.

use std::time::Duration;

use tinycloud_sdk::hooks::Scope;
use tinycloud_sdk::kv::PutOptions;
use tinycloud_sdk::{Error, LocalSigner};

mod common;
use common::{node_with, signed_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_history_unregister() {
    let n = node_with(|cfg| {
        cfg.hooks = tinycloud_node::config::HooksConfig {
            allow_private_destinations: true,
            backoff_secs: vec![1],
            ..Default::default()
        };
    })
    .await;
    let tc = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let scope: Scope = tc.hooks().scope("kv", Some("notes")).unwrap();
    assert!(matches!(
        tc.hooks()
            .register_webhook(&scope, "http://127.0.0.1:9/hook", "")
            .await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        tc.hooks()
            .register_webhook(&scope, "ftp://127.0.0.1/hook", "s")
            .await,
        Err(Error::InvalidInput(_))
    ));
    // Nothing listens on port 9: deliveries fail and are retried.
    let w = tc
        .hooks()
        .register_webhook(&scope, "http://127.0.0.1:9/hook", "s3cret")
        .await
        .unwrap();
    let id = w["id"].as_str().unwrap().to_owned();
    assert!(!w.to_string().contains("s3cret"));
    let list = tc.hooks().webhooks(&scope).await.unwrap();
    assert_eq!(list.len(), 1);
    tc.kv()
        .put("notes/a", "x", &PutOptions::default())
        .await
        .unwrap();
    let mut history = Vec::new();
    for _ in 0..40 {
        history = tc.hooks().deliveries(&scope, &id).await.unwrap();
        if !history.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(history[0]["status"], "retrying", "{history:?}");
    tc.hooks().unregister_webhook(&scope, &id).await.unwrap();
    let list = tc.hooks().webhooks(&scope).await.unwrap();
    assert_eq!(list[0]["active"], false);
    n.node.stop().await.unwrap();
}
