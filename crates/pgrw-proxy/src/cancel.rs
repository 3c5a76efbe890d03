//! Cancel keys: each client gets a proxy-issued BackendKeyData; a
//! CancelRequest with that key is delivered to the backend running the
//! client's query at that moment, if any.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::node_stream::NodeStream;
use crate::protocol::frontend::{CancelKey, encode_cancel_request};

/// Where a cancel for one client goes now: a node and the backend's own key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    /// The node's host.
    pub host: String,
    /// The node's port.
    pub port: u16,
    /// The backend's process id.
    pub process_id: i32,
    /// The backend's secret key.
    pub secret_key: Vec<u8>,
}

/// One client's slot: the backend it is using, if any. Setting it per
/// statement costs a reference count, not a copy.
pub type CancelSlot = Arc<Mutex<Option<Arc<CancelTarget>>>>;

/// The key a client got: process id and 4-byte secret.
type ProxyKey = (i32, [u8; 4]);

/// Every issued key and its client's slot.
type KeyMap = Arc<Mutex<HashMap<ProxyKey, CancelSlot>>>;

/// The proxy-issued key of one client, removed from the registry when dropped.
pub struct IssuedKey {
    /// The process id announced to the client.
    pub process_id: i32,
    /// The secret key announced to the client.
    pub secret_key: [u8; 4],
    /// Where a cancel goes now.
    pub slot: CancelSlot,
    registry: KeyMap,
}

impl Drop for IssuedKey {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.registry.lock() {
            keys.remove(&(self.process_id, self.secret_key));
        }
    }
}

/// One more than the largest process id any Linux allows (`PID_MAX_LIMIT`,
/// 2^22; other systems stay lower): no server process has an id at or above it.
const NO_PROCESS_BELOW: u32 = 1 << 22;

/// A process id for a client's BackendKeyData from `random`: at or above
/// [`NO_PROCESS_BELOW`], so that `pg_terminate_backend(pid)` or
/// `pg_cancel_backend(pid)` of the id a client was given can never reach an
/// unrelated backend on a node (it answers "not a PostgreSQL backend process").
fn proxy_process_id(random: u32) -> i32 {
    let span = i32::MAX as u32 - NO_PROCESS_BELOW;
    (NO_PROCESS_BELOW + random % span) as i32
}

/// Every live client's cancel key.
#[derive(Default)]
pub struct CancelRegistry {
    keys: KeyMap,
}

impl CancelRegistry {
    /// Issues a fresh random key for a new client.
    pub fn issue(&self) -> IssuedKey {
        let mut rng = rand::thread_rng();
        let slot = CancelSlot::default();
        loop {
            let process_id = proxy_process_id(rng.next_u32());
            let mut secret_key = [0u8; 4];
            rng.fill_bytes(&mut secret_key);
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if keys.contains_key(&(process_id, secret_key)) {
                continue;
            }
            keys.insert((process_id, secret_key), slot.clone());
            return IssuedKey {
                process_id,
                secret_key,
                slot,
                registry: self.keys.clone(),
            };
        }
    }

    /// Delivers a client's CancelRequest to the backend it names, if that
    /// client is running something. Unknown keys are ignored, as PostgreSQL does.
    pub async fn cancel(&self, key: CancelKey<'_>) {
        let Ok(secret) = <[u8; 4]>::try_from(key.secret_key) else {
            return;
        };
        let target = {
            let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.get(&(key.process_id, secret))
                .and_then(|slot| slot.lock().ok().and_then(|target| target.clone()))
        };
        let Some(target) = target else { return };
        send_cancel(&target).await;
    }
}

/// How long the proxy's own CancelRequest may take to reach a node: a node
/// that does not take it in that time is hung, and its backend is closed
/// anyway.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends a CancelRequest for the backend `target` names; gives up silently
/// (as a client's cancel may fail silently) after [`CANCEL_TIMEOUT`].
pub async fn send_cancel(target: &CancelTarget) {
    let _ = tokio::time::timeout(CANCEL_TIMEOUT, async {
        // In plaintext, as libpq sends its cancels, over TCP or the node's socket.
        let Ok(mut stream) = NodeStream::open(&target.host, target.port).await else {
            return;
        };
        let mut out = BytesMut::new();
        encode_cancel_request(
            &mut out,
            CancelKey {
                process_id: target.process_id,
                secret_key: &target.secret_key,
            },
        );
        if stream.write_all(&out).await.is_err() {
            return;
        }
        // The node closes the connection once it has signalled the backend:
        // only then is the cancel done, as a client waiting for that close
        // (asyncpg does, before its next statement) must be able to rely on.
        let _ = stream.read(&mut [0; 1]).await;
    })
    .await;
}

/// Cancels what the backend `target` names is running, in the background:
/// the proxy gives up on a statement (its client left, its node hangs, the
/// proxy is shutting down) without waiting for the node, and the node stops
/// working for nobody as soon as it can.
pub fn spawn_cancel(target: Arc<CancelTarget>) {
    tokio::spawn(async move { send_cancel(&target).await });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_process_id_is_never_a_real_process_id() {
        for random in [0, 1, NO_PROCESS_BELOW, u32::MAX, u32::MAX / 2, 12345] {
            let pid = proxy_process_id(random);
            assert!(pid >= NO_PROCESS_BELOW as i32, "{random} gave {pid}");
        }
        let registry = CancelRegistry::default();
        for _ in 0..10_000 {
            let key = registry.issue();
            assert!(
                key.process_id >= NO_PROCESS_BELOW as i32,
                "{}",
                key.process_id
            );
        }
    }

    /// PostgreSQL closes a cancel connection once it has signalled the
    /// backend; a client (asyncpg) waits for that close before its next
    /// statement, so the proxy may close the client's only after the node's.
    #[tokio::test]
    async fn a_cancel_is_sent_once_the_node_has_closed_its_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = CancelTarget {
            host: "127.0.0.1".to_owned(),
            port: listener.local_addr().unwrap().port(),
            process_id: 7,
            secret_key: vec![1, 2, 3, 4],
        };
        let mut sending = tokio::spawn(async move { send_cancel(&target).await });
        let (mut node, _) = listener.accept().await.unwrap();
        let mut request = [0; 16];
        node.read_exact(&mut request).await.unwrap();
        assert_eq!(
            request[..8],
            [0, 0, 0, 16, 4, 210, 22, 46],
            "a CancelRequest"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut sending)
                .await
                .is_err(),
            "still waiting for the node to close"
        );
        drop(node);
        tokio::time::timeout(Duration::from_secs(5), sending)
            .await
            .expect("done once the node closed")
            .unwrap();
    }
}
