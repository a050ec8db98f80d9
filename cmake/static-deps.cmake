# Included by CMakeLists.txt for the `static` preset (LM_STATIC=ON), before find_package(spdlog).
#
# Why: Debian 12 ships spdlog and fmt as shared libraries only (no libspdlog.a / libfmt.a), so a
# fully static link (-static) of spdlog::spdlog fails with "attempted static link of dynamic
# object libspdlog.so". Both libraries also work header-only, so for the static build we define
# the spdlog targets ourselves as header-only interface targets (fmt header-only too). When the
# project's find_package(spdlog) runs later, spdlog's export file sees that all of its targets
# already exist and keeps ours.
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
