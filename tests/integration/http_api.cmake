# The conduit.v1 HTTP API (POST /api/publish, GET /api/channels, GET
# /api/history) over real HTTP: answers, every refusal and their order.
add_executable(conduit_http_api_tests ${CMAKE_CURRENT_LIST_DIR}/http_api_test.cpp)
target_link_libraries(conduit_http_api_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_http_api_tests PRIVATE ${CONDUIT_WARNINGS})
add_test(NAME channels.http_api COMMAND conduit_http_api_tests)
set_tests_properties(channels.http_api PROPERTIES LABELS "integration;mt" TIMEOUT 120)
