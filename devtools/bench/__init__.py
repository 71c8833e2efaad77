"""Performance budgets: DynamoDB requests per route, and cold-start import cost per function (``make bench``).

``python -m devtools.bench [--only dynamodb|imports|scan] [--runs 7] [--output bench-results.json]`` prints a table and
writes ``bench-results.json`` at the repo root (git-ignored): a list of
``{"name": ..., "metric": ..., "value": <number>, "budget": <number or null>}``. Exit code 1 when a row is over its
budget or a measured response had the wrong status code (a broken route must not look cheap), 2 when the bench could
not run (no build, no DynamoDB Local, an unhooked DynamoDB client...).

DynamoDB requests (metric ``dynamodb_requests``; ``transactions`` for the grant)
    The real ``ordering.handler.lambda_handler``, ``consumption.handler.lambda_handler`` and
    ``customers.handler.lambda_handler`` on API Gateway HTTP API (payload 2.0) events (admin routes with the
    ``credits/admin`` scope), against an in-memory DynamoDB Local started for the run, with the template's tables and
    the demo catalog (devtools/demo/wonderai.yaml).
    Requests are counted by a botocore ``before-send.dynamodb`` hook registered on the client of every PynamoDB model
    (the models do not necessarily share one connection: a subclass that connects first gets its own). Every request
    is also counted on the wire (``botocore.endpoint.Endpoint._send`` to the DynamoDB Local endpoint); the two counts
    must agree, and a calibration step checks one known call per model, so a request from a client the hook does not
    see fails the bench instead of looking free. "Cold catalog" means the handler's composition root was reset
    (``ordering.handler.dependencies.cache_clear()``), i.e. the offer cache is empty; "warm" means it is filled. The
    ordering catalog cache lifetime is set to an hour here so "warm" cannot expire in the middle of a slow run (the
    consumption handler's is its default, 60 s, longer than its part of the run). Any other AWS
    endpoint points at a closed local port: nothing reaches an AWS account. The consume rows run on a journal below
    its compaction limit, except the one labelled "compacts the journal". The customers rows use a plan and a
    non-restricted coupon defined through the admin routes (not counted); each subscribing user's customer exists
    already (read once, not counted), with no subscription yet.
    The webhook rows post Stripe-format events signed with the local webhook secret to
    ``stripe_webhook.handler.lambda_handler`` (a Function URL request), with ``PAYMENT_PROVIDER=local`` (a duplicate
    payment's refund makes no network call). The refund and dispute rows run on paid EnterpriseM orders of users
    holding nothing else, with the webhook's catalog cache warm, and check each user's balances through
    ``GET /credits`` afterwards (not counted); the abandoned-intent rows check the order as stored.

Reads after settled holds (metrics ``items_read``, ``read_units``)
    ``GET /credits`` of a user with one open hold, after 0 and after 1,000 hold/release pairs (made through the domain
    with the real repository, not the handler): one Query (``dynamodb_requests`` budget 1) whose items read
    (``ScannedCount``, budget: the count after 0 settled holds) and read units (``ConsumedCapacity``, reported) must
    not grow with the holds settled (``ReadTally``: hooks on every model's client while it measures).

Consume throughput (metric ``ops_per_s``, no budget)
    500 consumes of 1 token by one user through ``consumption.handler.lambda_handler`` against the same DynamoDB Local,
    in 1 then 8 worker processes started together (a process per Lambda instance: the Powertools resolver holds the
    current event, so one handler module serves one request at a time); ``ops_per_s`` = successful consumes / (last
    end - first start). Each is measured twice in the same run: the real spend (one conditional UpdateItem) and a naive
    read-then-write spend swapped into the same handler (GetItem, then UpdateItem conditional on the balance read,
    re-read and retried on a conflict). The final balance is checked: a lost update fails the row.

Cold-start import cost (metrics ``import_ratio``, ``import_ms``, ``boto3_import_ms``, ``bare_ms``)
    Each function's Handler module imported from the ``sam build`` output as Lambda would: a fresh ``python -I -S -B``
    (CPython 3.13, the venv's interpreter, no site-packages, no .pyc written: /var/task and /opt are read-only in
    Lambda) with ``sys.path`` = [.aws-sam/build/<Function>, DomainLayer python/, DependenciesLayer python/] and the
    function's environment from template.yaml. The child times the import statement itself with
    ``time.perf_counter`` (interpreter start-up and shutdown excluded); ``bare`` is the same timer around ``pass``.
    ``import_ratio = (handler - bare) / (boto3 - bare)`` on the medians of ``--runs`` runs (default 7, after one
    discarded warm-up round), runs interleaved bare/boto3/handler so drift hits all three alike. Layers are measured
    as shipped (the layer Makefiles precompile unchecked-hash .pyc files; the function code ships without .pyc).

    Which DependenciesLayer: the deployed build is arm64 (``make build``); its native extensions (pydantic-core) cannot
    load on an x86_64 machine. When the built layer's binaries are not for this machine, the bench uses the host-native
    build of the same requirements by the same layer Makefile (``LAYER_PLATFORM=native``):
    ``.aws-sam/build-native/DependenciesLayer``, which ``make build-native`` makes (``make bench`` runs it) and
    tests/infrastructure shares. It is reused while its versions match layers/dependencies/requirements.txt; run on its
    own, the bench rebuilds just that layer with ``make -C layers/dependencies`` when it is missing or stale. The
    function code and the DomainLayer (pure Python) always come from ``.aws-sam/build``. The printed output says which
    layer was used. A build older than the sources is refused: run ``make build`` (``make bench`` does).

The package, one concern a module: ``main`` (the command line) runs the parts ``imports``, ``dynamodb_requests``
(``ordering_routes``, ``consumption_routes``, ``customers_routes`` on ``handlers``, and ``throughput``), ``scan``,
``hot_item`` and ``growth`` (write units by ``capacity``), which share ``environment`` (the process environment and a
fresh DynamoDB Local), ``counting`` (the request hooks) and ``rows`` (rows, table, results file). The Lambda events
come from ``devtools.lambda_events``, like the dev server's and the tests'.
"""
