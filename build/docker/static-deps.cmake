# Injected into the `static` build by the Makefile (-DCMAKE_PROJECT_INCLUDE=...), right after
# project() and before the project's own find_package(spdlog).
#
# Why: Debian 12 ships spdlog and fmt as shared libraries only (no libspdlog.a / libfmt.a), so a
# fully static link (-static) of spdlog::spdlog fails with "attempted static link of dynamic
# object libspdlog.so". Both libraries also work header-only, so for the static build we define
# the spdlog targets ourselves as header-only interface targets (fmt header-only too). When the
# project's find_package(spdlog) runs later, spdlog's export file sees that all of its targets
# already exist and keeps ours.
#
# Remove this file once CMakeLists.txt links spdlog::spdlog_header_only with
# fmt::fmt-header-only under LM_STATIC itself.
if(LM_STATIC AND NOT TARGET spdlog::spdlog)
  find_package(Threads REQUIRED)
  foreach(target spdlog::spdlog spdlog::spdlog_header_only)
    add_library(${target} INTERFACE IMPORTED)
    set_target_properties(${target} PROPERTIES
      INTERFACE_COMPILE_DEFINITIONS "SPDLOG_FMT_EXTERNAL;FMT_HEADER_ONLY=1"
      INTERFACE_LINK_LIBRARIES "Threads::Threads")
  endforeach()
  message(STATUS "static build: spdlog and fmt are used header-only (build/docker/static-deps.cmake)")
endif()
