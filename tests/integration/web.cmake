# conduitd's web pages (web/, compiled into the binary): the routes over raw
# HTTP, the JavaScript client in Node, and the pages in a real Chromium (label browser: the
# release stage only, it needs the chromium package and takes ~a minute).
set(CONDUIT_WEB_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/web)

add_test(NAME web.routes
  COMMAND ${CONDUIT_PYTHON} ${CONDUIT_WEB_TESTS_DIR}/test_web_routes.py --conduitd $<TARGET_FILE:conduitd>
  WORKING_DIRECTORY ${CONDUIT_WEB_TESTS_DIR})
set_tests_properties(web.routes PROPERTIES LABELS "integration" TIMEOUT 120
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")

# web/conduit.js in Node against conduitd: backoff bounds, refusals, token
# expiry (3000) with a token function. Seconds; every stage.
add_test(NAME web.conduit_js
  COMMAND ${CONDUIT_NODE} ${CONDUIT_WEB_TESTS_DIR}/conduit_js_test.mjs --conduitd $<TARGET_FILE:conduitd>
  WORKING_DIRECTORY ${CONDUIT_WEB_TESTS_DIR})
set_tests_properties(web.conduit_js PROPERTIES LABELS "integration" TIMEOUT 120)

# Debian's chromium (scripts/setup installs it). Missing, the test fails with
# the reason rather than skipping: a browser test that does not run proves nothing.
find_program(CONDUIT_CHROMIUM NAMES chromium chromium-browser)
if(NOT CONDUIT_CHROMIUM)
  set(CONDUIT_CHROMIUM /usr/bin/chromium)
endif()
add_test(NAME web.browser
  COMMAND ${CONDUIT_NODE} ${CONDUIT_WEB_TESTS_DIR}/browser_test.mjs --conduitd $<TARGET_FILE:conduitd>
          --conduit $<TARGET_FILE:conduit_cli> --chromium ${CONDUIT_CHROMIUM}
          --reports ${PROJECT_SOURCE_DIR}/build/test-reports/browser
  WORKING_DIRECTORY ${CONDUIT_WEB_TESTS_DIR})
# RUN_SERIAL: Chromium and a fan-out bench on two shared cores would slow the
# timing-sensitive tests running beside it.
set_tests_properties(web.browser PROPERTIES LABELS "browser;interop" TIMEOUT 180 RUN_SERIAL TRUE)
