# src/redis, the asynchronous Redis client under the Redis backplane, against
# real redis-server processes that each test starts on a free loopback port.

find_program(CONDUIT_REDIS_SERVER redis-server REQUIRED)
set(CONDUIT_REDIS_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/redis)

add_executable(conduit_redis_tests ${CONDUIT_REDIS_TESTS_DIR}/redis_client_test.cpp)
target_link_libraries(conduit_redis_tests PRIVATE conduit_redis conduit_ops PkgConfig::HIREDIS GTest::gtest
  GTest::gtest_main)
target_compile_options(conduit_redis_tests PRIVATE ${CONDUIT_WARNINGS})
target_compile_definitions(conduit_redis_tests PRIVATE CONDUIT_TEST_REDIS_SERVER="${CONDUIT_REDIS_SERVER}")

# conduit_redis_test(NAME FILTER TIMEOUT LABELS...): one ctest per gtest group.
# The client runs its own thread beside the test's threads: label mt, so the
# ThreadSanitizer stage runs them.
function(conduit_redis_test name filter timeout)
  add_test(NAME redis.${name} COMMAND conduit_redis_tests --gtest_filter=${filter})
  set_tests_properties(redis.${name} PROPERTIES LABELS "${ARGN}" TIMEOUT ${timeout})
endfunction()

conduit_redis_test(url        "RedisUrl.*"   30 unit)
conduit_redis_test(commands   "RedisClient.RepliesOfEveryType:RedisClient.SelectsTheDatabaseOfTheUrl:RedisClient.EvalRunsALuaScript" 120 integration mt)
conduit_redis_test(pipelining "RedisClient.PipelinedCommandsFromTwoThreadsKeepEachThreadsOrder:RedisClient.CommandsQueuedTogetherLeaveInOneWrite" 180 integration mt)
conduit_redis_test(auth       "RedisClient.AuthenticatesWithThePasswordOfTheUrl:RedisClient.WrongPasswordNeverConnectsAndSaysWhy:RedisClient.MissingPasswordIsRefusedByTheServer" 120 integration mt)
conduit_redis_test(pubsub     "RedisClient.PubSubDeliversInOrderAndUnsubscribeStopsDelivery:RedisClient.SubscribeBeforeStartAppliesOnTheFirstConnection" 120 integration mt)
conduit_redis_test(outage     "RedisClient.SurvivesRedisKilledAndRestartedAndResubscribes:RedisClient.LosingThePubSubConnectionReconnectsThePair:RedisClient.SubscriptionChangesDuringAnOutageApplyOnReconnect:RedisClient.AnOutageLogsEachTransitionOnce:RedisClient.ConnectTimeoutWhenRedisDoesNotAnswer" 180 integration mt)
conduit_redis_test(stop       "RedisClient.StopWhileDisconnectedReturnsPromptly:RedisClient.StopAnswersEveryPendingCommand:RedisClient.CommandsBeyondMaxPendingAreRefusedAtOnce" 120 integration mt)

# conduit::Channels with the Redis engine: two in-process nodes sharing channels
# through a real redis-server (cross-node order, recovery on either node while
# publishing, Redis lost and back, a node started before Redis).
add_executable(conduit_channels_redis_tests ${CMAKE_CURRENT_LIST_DIR}/channels_redis_test.cpp)
target_include_directories(conduit_channels_redis_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(conduit_channels_redis_tests PRIVATE conduit PkgConfig::HIREDIS GTest::gtest GTest::gtest_main)
target_compile_options(conduit_channels_redis_tests PRIVATE ${CONDUIT_WARNINGS})
target_compile_definitions(conduit_channels_redis_tests PRIVATE
  CONDUIT_TEST_REDIS_SERVER="${CONDUIT_REDIS_SERVER}")
add_test(NAME redis.channels COMMAND conduit_channels_redis_tests)
set_tests_properties(redis.channels PROPERTIES LABELS "integration;mt" TIMEOUT 240)
