use super::*;

#[test]
fn smoke() {
    assert!(parse(br#"{"incident":{"id":"a"}}"#).is_ok());
}
