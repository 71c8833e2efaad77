"""Local API: the real ``lambda_handler``s behind a small HTTP server that plays API Gateway (``make run``:
``python -m devtools.devserver``).

What it starts, in order (``server.serve``):

1. DynamoDB Local (in memory, port ``DYNAMODB_PORT``, default 8000), unless ``AWS_ENDPOINT_URL_DYNAMODB`` is set;
2. the environment the functions read (table names, fake AWS credentials, ``PAYMENT_PROVIDER=local``...), set
   **before** any handler or PynamoDB model is imported, because PynamoDB reads table names at class definition
   (``environment``);
3. the template's tables (``devtools.local_tables``), the demo catalog (``devtools/demo/wonderai.yaml``) and plans;
4. a threading HTTP server on ``127.0.0.1:PORT`` (default 3000), HTTP/1.1 with keep-alive: every response goes out in
   one write on a ``TCP_NODELAY`` socket, so a client that keeps its connection open does not wait for Nagle and
   delayed ACKs (~40 ms a request) between the headers and the body (``http_handler``).

How requests reach the handlers (the same events AWS would send, built by ``devtools.lambda_events``):

- every ``HttpApi`` route of ``template.yaml`` becomes an API Gateway **HTTP API payload 2.0** event for its function;
  the most specific route wins (``/credits/ledger`` before ``/credits/{offerGroup}``), as in API Gateway (``routes``);
  as API Gateway HTTP APIs do, the path is percent-decoded once, then routed, and the event carries it decoded with
  its ``pathParameters`` (``/admin/users/auth0%7Cabc/grants`` is user ``auth0|abc``; an encoded ``/`` is no route);
- the server plays the **JWT authorizer** (``auth``): ``Authorization: Bearer <HS256 JWT>`` signed with
  ``LOCAL_JWT_SECRET`` (default ``local-dev-secret``; ``exp``/``nbf`` checked, ``aud``/``iss`` checked when present).
  Without a valid token it answers ``401 {"error": "unauthorized"}`` and never calls the handler; a token without one
  of the route's ``AuthorizationScopes`` (the admin routes') gets ``403 {"error": "forbidden"}``. The claims go to
  ``requestContext.authorizer.jwt.claims`` as strings, like API Gateway passes them;
- a path no route matches **and** a known path with another method both answer ``404 not_found``: API Gateway HTTP
  APIs have no 405, they answer 404 for any method/path pair without a route;
- ``POST /webhooks/stripe`` goes to the Stripe webhook function as a **Lambda Function URL** event (no authorizer, raw
  body byte-exact, base64 when it is not UTF-8);
- ``/openapi.json`` is the merged OpenAPI document of every HTTP function (Powertools ``OpenAPIMerge``) with a bearer
  JWT security scheme, and ``/docs`` is Swagger UI served from the assets bundled with Powertools (no CDN)
  (``openapi_ui``);
- ``POST /_local/payments/{paymentIntentId}/succeed|fail|require-action|refund`` plays the payment provider of
  ``PAYMENT_PROVIDER=local`` (docs/api.md#local-simulation-dev-server-only, ``local_provider``): it finds the order of
  the intent (GSI ``ByPaymentIntent``), builds the Stripe event Stripe would send (``payment_intent.succeeded``,
  ``payment_intent.payment_failed``, ``payment_intent.requires_action``, ``charge.refunded``), signs it with
  ``LOCAL_WEBHOOK_SECRET`` and delivers it to the webhook function, so the same code path runs as with Stripe;
- the subscriptions half's processor is the **Stripe simulation** (``devtools.stripe_sim``) served on a port of its
  own, named to the functions by ``LOCAL_STRIPE_API_BASE`` (they call it through the real Stripe adapter); the events
  it makes are signed and delivered to the webhook function after the triggering function returned, before the
  server answers; ``/_local/stripe/...`` renews a subscription, declines its next invoice, refunds or disputes a
  charge, and reads its objects; moving the clock renews what is due; the demo plans of ``devtools/demo/plans.yaml``
  are put at start (``local_stripe``);
- CORS preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered from the HttpApi's
  ``CorsConfiguration``, without the authorizer, as API Gateway does (``cors``);
- ``/_local/events`` is a tiny EventBridge ``PutEvents`` endpoint (``AWS_ENDPOINT_URL_EVENTBRIDGE`` points there), so
  the events the functions publish are logged instead of going to AWS; ``GET /_local/events`` lists the last ones
  (``event_sink``);
- ``POST /_local/expiry-scan`` runs the expiry scan now, as its schedule would (the scheduled event of
  ``events/expiry_scan/scheduled.json`` stamped with the local clock's time), and answers what the run did;
- ``GET /_local/clock`` answers the **test clock** every function reads (``{"now"}``), and ``POST /_local/clock``
  with ``{"advanceSeconds": n}`` (n >= 0) or ``{"set": "<ISO-8601 time with a timezone>"}`` moves it (``set``: that
  time now, then flowing with the real time). The clock is a small state file (``usercredits.adapters.clock``) named
  by ``LOCAL_CLOCK_FILE``: yours if you set it (``make invoke`` then reads the same clock), else a temporary file
  made at start-up and removed at exit. A deployed stack never has it (the settings refuse it in AWS Lambda)
  (``local_clock``).

One Lambda container runs one request at a time, and Powertools' resolvers keep the current event on the module-level
``app``, so calls are serialised per function (``functions``). A handler that raises answers 500 and the server keeps
running.
"""
