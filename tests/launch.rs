//! End-to-end launches through a real gateway and a real test platform.

mod support;

use support::*;

#[tokio::test]
async fn full_launch_reaches_the_display_path() {
    let platform = TestPlatform::start().await;
    let gw = Gateway::start(&platform).await;
    let browser = Browser::new();
    let result = browser.launch(&gw, &platform, USAGE).await;
    assert_eq!(result.status, 302, "{}", result.body);
    assert_eq!(result.location.as_deref(), Some(gw.target(USAGE).as_str()));
    assert!(result.set_session());
    let (status, body) = browser.get(&gw, &display_path(USAGE)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(USAGE));
    assert_eq!(gw.session_count().await, 1);
    assert_eq!(
        gw.login_state_count().await,
        0,
        "the login state is consumed"
    );
}
