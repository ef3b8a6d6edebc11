# find_package(AsyMoEP) support.
#
# Provides the imported target AsyMoEP::asymo_ep (the plugin library libasymo_ep.so, with include/asymo_ep.h on its
# interface include path) and the variables AsyMoEP_LIBRARY (full path of the library, to pass to
# RegisterExecutionProviderLibrary) and AsyMoEP_INCLUDE_DIR.
#
# Works from a source checkout (cmake -DAsyMoEP_DIR=<repo>/cmake; the library is looked up in target/release, then
# target/debug) and from an installed tree (<prefix>/lib/cmake/AsyMoEP/ with lib/ and include/ beside it).
# Set AsyMoEP_LIBRARY yourself to point at a library elsewhere.

get_filename_component(_asymo_dir "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
if(EXISTS "${_asymo_dir}/../Cargo.toml")
  get_filename_component(_asymo_root "${_asymo_dir}/.." ABSOLUTE)
  set(_asymo_lib_hints "${_asymo_root}/target/release" "${_asymo_root}/target/debug")
  set(_asymo_inc "${_asymo_root}/include")
else()
  get_filename_component(_asymo_prefix "${_asymo_dir}/../../.." ABSOLUTE)
  set(_asymo_lib_hints "${_asymo_prefix}/lib")
  set(_asymo_inc "${_asymo_prefix}/include")
endif()

if(NOT AsyMoEP_LIBRARY)
  find_library(AsyMoEP_LIBRARY NAMES asymo_ep HINTS ${_asymo_lib_hints} NO_DEFAULT_PATH)
endif()
set(AsyMoEP_INCLUDE_DIR "${_asymo_inc}")

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(AsyMoEP
  REQUIRED_VARS AsyMoEP_LIBRARY AsyMoEP_INCLUDE_DIR
  VERSION_VAR AsyMoEP_VERSION
  REASON_FAILURE_MESSAGE "libasymo_ep.so not found: build it with `cargo build --release` or set AsyMoEP_LIBRARY")

if(AsyMoEP_FOUND AND NOT TARGET AsyMoEP::asymo_ep)
  add_library(AsyMoEP::asymo_ep SHARED IMPORTED)
  set_target_properties(AsyMoEP::asymo_ep PROPERTIES
    IMPORTED_LOCATION "${AsyMoEP_LIBRARY}"
    IMPORTED_NO_SONAME TRUE
    INTERFACE_INCLUDE_DIRECTORIES "${AsyMoEP_INCLUDE_DIR}")
endif()

unset(_asymo_dir)
unset(_asymo_root)
unset(_asymo_prefix)
unset(_asymo_lib_hints)
unset(_asymo_inc)
