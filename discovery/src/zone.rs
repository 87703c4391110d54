//! The agent's zone: its Node's `topology.kubernetes.io/zone` label, which
//! the agent announces so the tracker hands out same-zone peers first.

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

/// The well-known label cloud providers set on every Node.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Reads `node`'s zone label: None when the Node has none (a cluster
/// without zones, or kind).
pub async fn node_zone(client: Client, node: &str) -> Result<Option<String>, kube::Error> {
    let nodes: Api<Node> = Api::all(client);
    let node = nodes.get(node).await?;
    Ok(node
        .metadata
        .labels
        .and_then(|mut labels| labels.remove(ZONE_LABEL))
        .filter(|zone| !zone.is_empty()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use tower_test::mock;

    use super::*;

    const NODE: &str = include_str!("testdata/node.json");

    /// Answers one GET of `node-b` with `status` and `body`.
    async fn answer(status: StatusCode, body: String) -> Result<Option<String>, kube::Error> {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let api_server = tokio::spawn(async move {
            let (request, reply) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(request.uri().path(), "/api/v1/nodes/node-b");
            let mut response = Response::new(Body::from(body.into_bytes()));
            *response.status_mut() = status;
            reply.send_response(response);
        });
        let zone = node_zone(Client::new(service, "shoal"), "node-b").await;
        api_server.await.unwrap();
        zone
    }

    #[tokio::test]
    async fn reads_the_zone_label() {
        let zone = answer(StatusCode::OK, NODE.into()).await.unwrap();
        assert_eq!(zone.as_deref(), Some("eu-west-1b"));
    }

    #[tokio::test]
    async fn a_node_without_zone_has_none() {
        let mut node: serde_json::Value = serde_json::from_str(NODE).unwrap();
        node["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(ZONE_LABEL);
        let zone = answer(StatusCode::OK, node.to_string()).await.unwrap();
        assert_eq!(zone, None);
    }

    #[tokio::test]
    async fn forbidden_is_an_error() {
        let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodes \"node-b\" is forbidden: User \"system:serviceaccount:shoal:shoal\" cannot get resource \"nodes\" in API group \"\" at the cluster scope","reason":"Forbidden","details":{"name":"node-b","kind":"nodes"},"code":403}"#;
        let err = answer(StatusCode::FORBIDDEN, status.into())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("forbidden"), "{err}");
    }
}
