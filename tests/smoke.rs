mod common;

#[test]
fn health_answers() {
    let s = common::Server::start();
    let r = s.get("/healthz", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, serde_json::json!({"status": "ok"}));
    let shop = common::shop(&s, "Tuscan Kitchen", true);
    assert_eq!(shop.option_id.len(), 22);
}
