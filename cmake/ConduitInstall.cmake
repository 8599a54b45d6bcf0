# Installation and the CMake / pkg-config packages of libconduit.
#
#   cmake --install build/release --prefix /opt/conduit
#
# installs the public headers, the libraries, conduitd and conduit, the docs,
# lib/cmake/conduit (find_package(conduit CONFIG) → conduit::conduit) and
# lib/pkgconfig/conduit.pc. Included once, at the end of the top
# CMakeLists.txt, after every target it names exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
include(${CMAKE_CURRENT_LIST_DIR}/ConduitVersion.cmake)

# The library targets of the package, in link order (a target before the ones
# it depends on: static libraries are searched left to right). `conduit` is the
# umbrella applications link.
if(NOT DEFINED CONDUIT_INSTALL_TARGETS)
  set(CONDUIT_INSTALL_TARGETS conduit conduit_wire)
endif()
# The packages those targets link, found again by conduitConfig.cmake with
# find_dependency (each entry: the arguments of find_dependency) ...
if(NOT DEFINED CONDUIT_PACKAGE_DEPENDENCIES)
  set(CONDUIT_PACKAGE_DEPENDENCIES
    "Threads"
    "OpenSSL"
    "ZLIB"
    "Boost 1.81 CONFIG"
    "fmt"
    "spdlog"
    "prometheus-cpp CONFIG"
    "tomlplusplus")
endif()
# ... and the pkg-config modules giving the same link line to conduit.pc.
if(NOT DEFINED CONDUIT_PKGCONFIG_REQUIRES)
  set(CONDUIT_PKGCONFIG_REQUIRES libssl libcrypto zlib spdlog fmt prometheus-cpp-core tomlplusplus)
endif()
# Headers of include/conduit that belong to another target than the package.
set(CONDUIT_PRIVATE_HEADERS load.hpp)

# In the build tree the targets see include/ and src/; once installed only the
# public include/ exists. Rewrite each include directory inside the source or
# build tree as a build-tree-only one, whoever defined the target, and add the
# installed one.
foreach(target IN LISTS CONDUIT_INSTALL_TARGETS)
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  set(rewritten "")
  if(dirs)
    foreach(dir IN LISTS dirs)
      string(FIND "${dir}" "${PROJECT_SOURCE_DIR}/" in_source)
      string(FIND "${dir}" "${PROJECT_BINARY_DIR}/" in_build)
      if(in_source EQUAL 0 OR in_build EQUAL 0)
        list(APPEND rewritten "$<BUILD_INTERFACE:${dir}>")
      else()
        list(APPEND rewritten "${dir}")  # a generator expression or a system path: valid anywhere
      endif()
    endforeach()
  endif()
  list(APPEND rewritten "$<BUILD_INTERFACE:${CONDUIT_GENERATED_DIR}/include>"
                        "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${rewritten}")
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")  # e.g. an umbrella target that only links the parts
    target_compile_features(${target} INTERFACE cxx_std_20)
  else()
    # The public headers are C++20: consumers must compile as C++20 too.
    target_compile_features(${target} PUBLIC cxx_std_20)
    # Shared libraries find each other in their own directory (RUNPATH is not
    # inherited from the executable by the libraries it loads).
    set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN")
  endif()
endforeach()

# Inside Conduit's build (add_subdirectory, FetchContent, examples/) the same
# names as the installed package: conduit::conduit and conduit::<part>.
foreach(target IN LISTS CONDUIT_INSTALL_TARGETS)
  if(NOT TARGET conduit::${target})
    add_library(conduit::${target} ALIAS ${target})
  endif()
endforeach()

foreach(app conduitd conduit_cli)
  if(TARGET ${app})
    conduit_version_info(${app})
    # Shared libraries: the installed binaries find them in ../lib of their
    # own directory, wherever the prefix is.
    set_target_properties(${app} PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
    install(TARGETS ${app} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

set(CONDUIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/conduit)
install(TARGETS ${CONDUIT_INSTALL_TARGETS} EXPORT conduitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/conduit ${CONDUIT_GENERATED_DIR}/include/conduit
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp"
  REGEX "/(${CONDUIT_PRIVATE_HEADERS})$" EXCLUDE)
install(EXPORT conduitTargets NAMESPACE conduit:: DESTINATION ${CONDUIT_CMAKE_DIR})

set(CONDUIT_FIND_DEPENDENCIES "")
foreach(dep IN LISTS CONDUIT_PACKAGE_DEPENDENCIES)
  string(APPEND CONDUIT_FIND_DEPENDENCIES "find_dependency(${dep})\n")
endforeach()
# What a dependency without a CMake package needs (e.g. a pkg-config lookup).
if(DEFINED CONDUIT_PACKAGE_EXTRA)
  string(APPEND CONDUIT_FIND_DEPENDENCIES "${CONDUIT_PACKAGE_EXTRA}")
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/conduitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/conduitConfig.cmake INSTALL_DESTINATION ${CONDUIT_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/conduitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/conduitConfig.cmake ${PROJECT_BINARY_DIR}/conduitConfigVersion.cmake
  DESTINATION ${CONDUIT_CMAKE_DIR})

# pkg-config: the same link line, the libraries listed in link order and the
# compile definitions the targets give their users.
set(CONDUIT_PC_LIBS "")
set(CONDUIT_PC_CFLAGS "")
foreach(target IN LISTS CONDUIT_INSTALL_TARGETS)
  get_target_property(type ${target} TYPE)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")  # no file to link
    get_target_property(name ${target} OUTPUT_NAME)
    if(NOT name)
      set(name ${target})
    endif()
    string(APPEND CONDUIT_PC_LIBS " -l${name}")
  endif()
  get_target_property(defs ${target} INTERFACE_COMPILE_DEFINITIONS)
  if(defs)
    foreach(def IN LISTS defs)
      string(APPEND CONDUIT_PC_CFLAGS " -D${def}")
    endforeach()
  endif()
endforeach()
list(JOIN CONDUIT_PKGCONFIG_REQUIRES " " CONDUIT_PC_REQUIRES)
# The prefix is found from the .pc file's own place (pcfiledir), so the file
# stays right under `cmake --install --prefix DIR` and when the tree is moved.
file(RELATIVE_PATH CONDUIT_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" CONDUIT_PC_TO_PREFIX "${CONDUIT_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/conduit.pc.in ${PROJECT_BINARY_DIR}/conduit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/conduit.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md")
