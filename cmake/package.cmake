# The Debian package (`cpack -G DEB` in the build tree -> cmir_<version>_<arch>.deb): programs in
# /usr/bin, libcmir in /usr/lib/<multiarch>, the GDAL plugin in GDAL's plugin directory (so GDAL
# finds it with no environment variable), headers in /usr/include/cmir; dependencies from
# dpkg-shlibdeps (package dpkg-dev).
set(CPACK_PACKAGE_NAME cmir)
set(CPACK_PACKAGE_VENDOR "CMIR")
set(CPACK_PACKAGE_CONTACT "CMIR maintainers <cmir@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION "Cross-modal retrieval (CMIR-NET) for remote sensing in C: the
programs cmir_synth, cmir_tile, cmir_train, cmir_index, cmir_search, cmir_eval and cmir_version,
the library libcmir with its headers, and the GDAL driver plugin CMIR.")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# GDAL's programs to use the driver with; the acoustic model of query by voice
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "gdal-bin, pocketsphinx-en-us")
# libcmir.so.0 is in this package: its shlibs file lets dpkg-shlibdeps resolve it for the programs
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_STRIP_FILES ON)
include(CPack)
