# conduitd's web pages (web/, compiled into the binary): the routes over raw
# HTTP (every label), and the pages in a real Chromium (label browser: the
# release stage only, it needs the chromium package and takes ~a minute).
set(CONDUIT_WEB_TESTS_DIR ${CMAKE_CURRENT_LIST_DIR}/web)

add_test(NAME web.routes
  COMMAND ${CONDUIT_PYTHON} ${CONDUIT_WEB_TESTS_DIR}/test_web_routes.py --conduitd $<TARGET_FILE:conduitd>
  WORKING_DIRECTORY ${CONDUIT_WEB_TESTS_DIR})
set_tests_properties(web.routes PROPERTIES LABELS "integration" TIMEOUT 120
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
