# CPack: a Debian package with both executables, the desktop entry, AppStream metadata and icon,
# all under one reverse-DNS application id.
if(QS_BUILD_GUI)
  install(FILES resources/${QS_APP_ID}.desktop DESTINATION share/applications)
  install(FILES resources/${QS_APP_ID}.metainfo.xml DESTINATION share/metainfo)
  install(FILES resources/icons/quantscope.svg DESTINATION share/icons/hicolor/scalable/apps
          RENAME ${QS_APP_ID}.svg)
endif()

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "quantscope")
set(CPACK_PACKAGE_VENDOR "The QuantScope developers")
set(CPACK_PACKAGE_CONTACT "QuantScope developers <dev@quantscope.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Workbench for quantizing large language models")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_SECTION "science")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
include(CPack)
