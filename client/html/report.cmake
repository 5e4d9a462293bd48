# The HTML report (client/export_html.c) and its page: the template, style
# sheet and script under client/html/ are compiled in as byte arrays, so the
# installed perch needs no data files.  CMake re-runs (and rewrites the
# header only if it changed) whenever one of them changes.
set(html_arrays "")
foreach(asset report.html report.css report.js)
  set(asset_path ${CMAKE_CURRENT_SOURCE_DIR}/html/${asset})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${asset_path})
  file(READ ${asset_path} asset_hex HEX)
  string(REGEX REPLACE "(..)" "0x\\1," asset_bytes "${asset_hex}")
  string(MAKE_C_IDENTIFIER ${asset} asset_name)
  string(APPEND html_arrays
    "static const unsigned char ${asset_name}[] = { ${asset_bytes} 0x00 };\n")
endforeach()
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/html_assets.h
  CONTENT "/* Generated from client/html/ by client/html/report.cmake. */\n${html_arrays}")

target_sources(perch_report PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/export_html.c)
target_include_directories(perch_report PRIVATE ${CMAKE_CURRENT_BINARY_DIR})
