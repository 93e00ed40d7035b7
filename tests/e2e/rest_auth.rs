//! Authentication over HTTP: logging in, `me`, users, and every way a token is refused
//! (API.md "Authentication", DESIGN invariant 5).

use crate::rest_support::{
    assert_error, assert_field_error, assert_nothing_written_since, claims_for, decode_part,
    is_utc_time, is_uuid, me, server_secret, settled, sign, unix_now, unsigned,
};
use crate::support::{eventually, Api, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use jsonwebtoken::Algorithm;
use serde_json::json;

#[tokio::test]
async fn login_returns_an_hs256_bearer_token_that_identifies_the_user() {
    let server = TestServer::start().await;

    let answer = server
        .api()
        .post(
            "/api/auth/token/",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3600);
    assert_eq!(answer.body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(answer.body["user"]["role"], "super_admin");
    assert!(is_uuid(&answer.body["user"]["id"]), "{:?}", answer.body);
    let token = answer.body["access"].as_str().expect("access");
    assert_eq!(decode_part(token, 0)["alg"], "HS256");
    let claims = decode_part(token, 1);
    assert_eq!(claims["sub"], answer.body["user"]["id"]);
    assert_eq!(claims["email"], ADMIN_EMAIL);
    assert_eq!(claims["role"], "super_admin");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600, "default lifetime: {claims}");
    assert!((iat - unix_now()).abs() <= 5, "iat is now: {claims}");

    let me = me(&server.api().with_token(token)).await;
    assert_eq!(me["id"], answer.body["user"]["id"]);
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["role"], "super_admin");
    assert!(me.get("password_hash").is_none(), "no hash leaks: {me}");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let server = TestServer::start().await;
    let api = server.api();

    let wrong_password = api
        .post(
            "/api/auth/token/",
            json!({"email": ADMIN_EMAIL, "password": "not-the-password"}),
        )
        .await;
    let unknown_email = api
        .post(
            "/api/auth/token/",
            json!({"email": "nobody@example.com", "password": ADMIN_PASSWORD}),
        )
        .await;

    assert_error(&wrong_password, 401, "unauthenticated", "wrong password");
    assert_error(&unknown_email, 401, "unauthenticated", "unknown email");
    assert_eq!(
        wrong_password.body["error"]["message"], unknown_email.body["error"]["message"],
        "the message must not tell which one was wrong"
    );
    assert!(wrong_password.body.get("access").is_none());

    let cases = [
        (
            json!({"email": ADMIN_EMAIL}),
            "password",
            "password missing",
        ),
        (
            json!({"password": ADMIN_PASSWORD}),
            "email",
            "email missing",
        ),
        (
            json!({"email": ADMIN_EMAIL, "password": 12345678}),
            "password",
            "password not a string",
        ),
    ];
    for (body, field, why) in cases {
        let answer = api.post("/api/auth/token/", body).await;
        assert_field_error(&answer, field, why);
    }
}

/// DESIGN invariant 5: no token is trusted unless it is an unexpired HS256 token signed with
/// the server's secret for a user that exists; every refusal is a 401 and writes nothing.
#[tokio::test]
async fn forged_expired_and_garbage_tokens_get_401_and_write_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let user = me(&admin).await;
    let secret = server_secret(&server);
    let valid = claims_for(&user, 600);
    let mut unknown_user = valid.clone();
    unknown_user["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let mut no_exp = valid.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let good = sign(Algorithm::HS256, &secret, &valid);
    let tampered = {
        // Keep the real signature, swap in other claims.
        let parts: Vec<&str> = good.split('.').collect();
        let mut other = valid.clone();
        other["email"] = json!("intruder@example.com");
        let forged_payload = unsigned(&other);
        let payload = forged_payload.split('.').nth(1).unwrap().to_string();
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    let before = settled(&admin, 0).await;

    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "no Authorization header"),
        (Some("Bearer".into()), "Bearer without a token"),
        (Some("Bearer ".into()), "Bearer with an empty token"),
        (
            Some(format!("Basic {}", "YWRtaW46cGFzcw==")),
            "Basic scheme",
        ),
        (
            Some(format!("Token {good}")),
            "unknown scheme with a valid token",
        ),
        (Some("Bearer garbage".into()), "garbage"),
        (Some("Bearer a.b.c".into()), "three garbage parts"),
        (Some("Bearer ....".into()), "only dots"),
        (
            Some(format!("Bearer {}", "x".repeat(4000))),
            "a long garbage token",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    b"another-secret-of-32-bytes-long!",
                    &valid
                )
            )),
            "HS256 signed with another secret",
        ),
        (
            Some(format!("Bearer {}", unsigned(&valid))),
            "alg none, empty signature",
        ),
        (
            Some(format!(
                "Bearer {}{}",
                unsigned(&valid),
                good.split('.').nth(2).unwrap()
            )),
            "alg none with the real signature appended",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS512, &secret, &valid)
            )),
            "HS512 with the server's secret",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS384, &secret, &valid)
            )),
            "HS384 with the server's secret",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, &secret, &claims_for(&user, -30))
            )),
            "expired 30 s ago",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, &secret, &claims_for(&user, 0))
            )),
            "exp == now (no leeway)",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, &secret, &no_exp)
            )),
            "no exp claim",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(Algorithm::HS256, &secret, &unknown_user)
            )),
            "unknown user, valid signature",
        ),
        (
            Some(format!("Bearer {tampered}")),
            "payload swapped under a real signature",
        ),
    ];
    let body = json!({"name": "Forged", "subdomain": "forged", "owner_email": "o@example.com"});
    for (header, why) in cases {
        let client = reqwest::Client::new();
        let mut request = client
            .post(format!("{}/api/businesses/", server.base))
            .json(&body);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let answer = crate::support::Answer {
            status,
            body,
            headers: Default::default(),
        };
        assert_error(&answer, 401, "unauthenticated", why);
    }

    // The control: the same machinery with the real secret and live claims is accepted, so
    // each refusal above is about what was forged. It is also the "nothing written" probe.
    let self_signed = server.api().with_token(&good);
    assert_nothing_written_since(&self_signed, before, "after-forgeries").await;
}

#[tokio::test]
async fn tokens_expire_after_token_ttl_without_leeway() {
    let server = TestServer::start_with(&["--token-ttl", "3"], &[]).await;
    let answer = server
        .api()
        .post(
            "/api/auth/token/",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["expires_in"], 3);
    let admin = server
        .api()
        .with_token(answer.body["access"].as_str().unwrap());
    assert_eq!(
        admin.get("/api/users/me/").await.status,
        200,
        "fresh token works"
    );

    // jsonwebtoken's default leeway is 60 s: only a zero leeway makes this happen in time.
    let refused = eventually("the token to expire", || {
        let admin = admin.clone();
        async move {
            let answer = admin.get("/api/users/me/").await;
            (answer.status != 200).then_some(answer)
        }
    })
    .await;
    assert_error(&refused, 401, "unauthenticated", "expired token");
}

#[tokio::test]
async fn a_server_with_app_jwt_secret_accepts_only_tokens_signed_with_it() {
    const SECRET: &str = "e2e-known-secret-0123456789abcdef";
    let server = TestServer::start_with(&[], &[("APP_JWT_SECRET", SECRET)]).await;
    let admin = server.admin().await;
    let user = me(&admin).await;
    let api = server.api();

    let valid = sign(Algorithm::HS256, SECRET.as_bytes(), &claims_for(&user, 300));
    let expired = sign(Algorithm::HS256, SECRET.as_bytes(), &claims_for(&user, -1));
    let other = sign(
        Algorithm::HS256,
        b"e2e-other-secret-0123456789abcdef",
        &claims_for(&user, 300),
    );

    assert_eq!(
        api.with_token(&valid).get("/api/users/me/").await.status,
        200
    );
    assert_error(
        &api.with_token(&expired).get("/api/users/me/").await,
        401,
        "unauthenticated",
        "expired",
    );
    assert_error(
        &api.with_token(&other).get("/api/users/me/").await,
        401,
        "unauthenticated",
        "other secret",
    );
}

#[tokio::test]
async fn generated_secret_key_is_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;

    let path = server.data_dir().join("secret.key");
    let mode = std::fs::metadata(&path)
        .expect("secret.key exists")
        .permissions()
        .mode();

    assert_eq!(mode & 0o777, 0o600, "mode of {}", path.display());
    assert!(server_secret(&server).len() >= 16, "a real secret");
}

#[tokio::test]
async fn super_admin_creates_users_and_a_taken_email_is_a_conflict() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let created = admin
        .post(
            "/api/users/",
            json!({"email": "  New.Owner@Example.com ", "password": "owner-password-1", "role": "business_owner"}),
        )
        .await;

    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["email"], "new.owner@example.com");
    assert_eq!(created.body["role"], "business_owner");
    assert!(is_uuid(&created.body["id"]), "{:?}", created.body);
    assert!(
        is_utc_time(&created.body["created_at"]),
        "{:?}",
        created.body
    );
    let owner = server
        .api()
        .login("new.owner@example.com", "owner-password-1")
        .await;
    assert_eq!(me(&owner).await["id"], created.body["id"]);

    let taken = admin
        .post(
            "/api/users/",
            json!({"email": "NEW.OWNER@example.com", "password": "another-password", "role": "super_admin"}),
        )
        .await;
    assert_error(&taken, 409, "conflict", "email taken (any case)");

    let cases = [
        (
            json!({"email": "a@example.com", "password": "1234567", "role": "business_owner"}),
            "password",
            "7-character password",
        ),
        (
            json!({"email": "not-an-email", "password": "long-enough", "role": "business_owner"}),
            "email",
            "email without @",
        ),
        (
            json!({"email": "", "password": "long-enough", "role": "business_owner"}),
            "email",
            "empty email",
        ),
        (
            json!({"email": "a@example.com", "password": "long-enough", "role": "king"}),
            "role",
            "unknown role",
        ),
        (
            json!({"email": "a@example.com", "password": "long-enough"}),
            "role",
            "role missing",
        ),
        (
            json!({"password": "long-enough", "role": "business_owner"}),
            "email",
            "email missing",
        ),
        (
            json!({"email": "a@example.com", "role": "business_owner"}),
            "password",
            "password missing",
        ),
    ];
    for (body, field, why) in cases {
        assert_field_error(&admin.post("/api/users/", body).await, field, why);
    }

    let forbidden = owner
        .post(
            "/api/users/",
            json!({"email": "b@example.com", "password": "long-enough", "role": "super_admin"}),
        )
        .await;
    assert_error(&forbidden, 403, "forbidden", "an owner creating users");
    assert_error(
        &owner.get("/api/users/").await,
        403,
        "forbidden",
        "an owner listing users",
    );

    let users = admin.get("/api/users/").await;
    assert_eq!(users.status, 200);
    let emails: Vec<&str> = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails.len(),
        2,
        "only the admin and the one valid user: {emails:?}"
    );
    assert!(emails.contains(&ADMIN_EMAIL) && emails.contains(&"new.owner@example.com"));
}

#[tokio::test]
async fn every_protected_endpoint_refuses_a_request_without_a_token() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", "salon", "o@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let reservation = server.api().book(id, "Ann Lee").await;
    let rid = reservation["id"].as_str().unwrap();
    let anonymous = Api::new(&server.base);
    let before = settled(&admin, 2).await;

    let cases = [
        ("GET", "/api/users/me/".to_string()),
        ("GET", "/api/users/".to_string()),
        ("POST", "/api/users/".to_string()),
        ("GET", "/api/businesses/".to_string()),
        ("POST", "/api/businesses/".to_string()),
        ("GET", format!("/api/businesses/{id}/")),
        ("PATCH", format!("/api/businesses/{id}/")),
        ("DELETE", format!("/api/businesses/{id}/")),
        ("GET", format!("/api/businesses/{id}/reservations/")),
        (
            "POST",
            format!("/api/businesses/{id}/reservations/{rid}/cancel/"),
        ),
        ("GET", "/api/dashboard/".to_string()),
        ("GET", "/api/activity/".to_string()),
        ("GET", "/api/notifications/".to_string()),
        ("POST", "/api/notifications/read/".to_string()),
    ];
    for (method, path) in cases {
        let body = matches!(method, "POST" | "PATCH").then(|| {
            json!({"name": "X", "subdomain": "x", "owner_email": "x@example.com", "email": "x@example.com",
                   "password": "long-enough", "role": "super_admin", "up_to": 1})
        });
        let answer = anonymous.call(method, &path, body).await;
        assert_error(&answer, 401, "unauthenticated", &format!("{method} {path}"));
    }

    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.status,
        200,
        "still there"
    );
    assert_nothing_written_since(&admin, before, "after-anonymous").await;
}
