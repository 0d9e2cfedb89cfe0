"""One router per resource; each is mounted at /v2 and at /v2/users/{user_id}/apps/{app_id}."""
