# conduit::Client and the `conduit` CLI against real servers on loopback:
# Python websockets, Node ws, conduitd, and raw servers written in the tests.

set(CONDUIT_CLIENT_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/client)

add_executable(conduit_client_tests ${CONDUIT_CLIENT_TESTS_DIR}/client_tests.cpp)
target_link_libraries(conduit_client_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_client_tests PRIVATE ${CONDUIT_WARNINGS})
target_compile_definitions(conduit_client_tests PRIVATE
  CONDUIT_TEST_PYTHON="${CONDUIT_PYTHON}"
  CONDUIT_TEST_NODE="${CONDUIT_NODE}"
  CONDUIT_CLIENT_TEST_DIR="${CONDUIT_CLIENT_TESTS_DIR}"
  CONDUIT_TEST_CONDUITD="$<TARGET_FILE:conduitd>")
add_dependencies(conduit_client_tests conduitd)

# conduit_client_test(NAME FILTER TIMEOUT LABELS...): one ctest per gtest group.
function(conduit_client_test name filter timeout)
  add_test(NAME client.${name} COMMAND conduit_client_tests --gtest_filter=${filter})
  set_tests_properties(client.${name} PROPERTIES LABELS "integration;${ARGN}" TIMEOUT ${timeout})
endfunction()

# Every conduit::Client runs its own I/O thread next to the test's thread
# (send() and close() cross threads): label mt, ThreadSanitizer runs them.
conduit_client_test(echo        "ClientEcho.*"      120 interop mt)
conduit_client_test(handshake   "ClientHandshake.*" 120 interop mt)
conduit_client_test(reconnect   "ClientReconnect.*" 180 interop mt)
conduit_client_test(heartbeat   "ClientHeartbeat.*" 60 mt)
conduit_client_test(tls         "ClientTls.*"       120 interop mt)
conduit_client_test(compression "ClientCompression.*" 120 interop mt)
conduit_client_test(storm       "ClientStorm.*"     240 slow)
# conduitd drained by SIGTERM and restarted, twenty clients on a shared I/O thread.
conduit_client_test(rollout     "ClientRollout.*"   240 interop mt)

# The CLI's echo mode, driven case by case the way a conformance suite does.
if(TARGET conduit_cli)
  add_test(NAME client.cli_echo
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_CLIENT_TESTS_DIR}/cli_echo_test.py $<TARGET_FILE:conduit_cli>)
  set_tests_properties(client.cli_echo PROPERTIES
    LABELS "integration" TIMEOUT 300 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()

# `conduit bench fanout --processes K`: subscribers spread over worker
# processes against a real conduitd --mode broadcast; merged report, errors,
# no orphan workers.
if(TARGET conduit_cli)
  add_test(NAME client.cli_fanout_processes
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_CLIENT_TESTS_DIR}/cli_fanout_processes_test.py
            $<TARGET_FILE:conduit_cli> $<TARGET_FILE:conduitd>)
  set_tests_properties(client.cli_fanout_processes PROPERTIES
    LABELS "integration" TIMEOUT 300 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()

# The CLI as scripts use it: option order, send -/@FILE, --timeout's close
# frame, --verbose, --show-ping-pong, /ping and /close, --max-attempts, 4xx.
if(TARGET conduit_cli)
  add_test(NAME client.cli_commands
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_CLIENT_TESTS_DIR}/cli_commands_test.py $<TARGET_FILE:conduit_cli>)
  set_tests_properties(client.cli_commands PROPERTIES
    LABELS "integration" TIMEOUT 300 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;CONDUIT_NODE=${CONDUIT_NODE}")
endif()

# docs/cli.md lists every command, flag and exit status that `--help` shows.
if(TARGET conduit_cli)
  add_test(NAME client.cli_docs
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_CLIENT_TESTS_DIR}/cli_docs_test.py $<TARGET_FILE:conduit_cli>
            ${PROJECT_SOURCE_DIR}/docs/cli.md)
  set_tests_properties(client.cli_docs PROPERTIES LABELS "integration" TIMEOUT 60)
endif()

# conduit::ChannelClient against conduitd --mode pubsub: recovery across
# dropped connections under concurrent publishing (a TCP proxy in the test
# cuts the connection), a restart that lost the history, refusals.
add_executable(conduit_channel_client_tests ${CONDUIT_CLIENT_TESTS_DIR}/channel_client_tests.cpp)
target_link_libraries(conduit_channel_client_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_channel_client_tests PRIVATE ${CONDUIT_WARNINGS})
target_compile_definitions(conduit_channel_client_tests PRIVATE CONDUIT_TEST_CONDUITD="$<TARGET_FILE:conduitd>")
add_dependencies(conduit_channel_client_tests conduitd)
add_test(NAME client.channels COMMAND conduit_channel_client_tests)
set_tests_properties(client.channels PROPERTIES LABELS "integration;mt" TIMEOUT 180)

# `conduit sub`, `pub` and `token` against conduitd --mode pubsub: round trip,
# HTTP API, exit codes, a restart that lost the history, JWTs checked with hmac.
if(TARGET conduit_cli)
  add_test(NAME client.cli_channels
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_CLIENT_TESTS_DIR}/cli_channels_test.py
            $<TARGET_FILE:conduit_cli> $<TARGET_FILE:conduitd>)
  set_tests_properties(client.cli_channels PROPERTIES
    LABELS "integration" TIMEOUT 300 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
