# conduitd --mode pubsub (the default): [channels] with namespaces, limits,
# auth.jwt_secret_file and [api] reach the running daemon (conduit_ops_test is
# defined in ops.cmake, included before this file).
conduit_ops_test(pubsub_daemon   test_pubsub_daemon.py  120 LABELS interop ARGS PubsubDaemon)
conduit_ops_test(pubsub_http_api test_pubsub_daemon.py  120 ARGS PubsubHttpApi)
