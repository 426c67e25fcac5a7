/* gdal_CMIR: the GDAL driver plugin "CMIR". Raster side: a tile archive lists one subdataset
 * per tile and modality (CMIR:"a.mat":PAN|MS:n, 0-based); vector side: CMIR:QUERY runs a
 * retrieval (cmir_search) and exposes its ranked hits as a layer. A thin shim over libcmir. */

#include "cmir/archive.h"
#include "cmir/index.h"

#include "cpl_conv.h"
#include "cpl_string.h"
#include "cpl_vsi.h"
#include "gdal_pam.h"
#include "gdal_priv.h"
#include "ogr_spatialref.h"
#include "ogrsf_frmts.h"

#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

static const char *const DRIVER_HELP = "gdal_plugin/README.md in the CMIR sources";

static const char *const OPEN_OPTIONS =
    "<OpenOptionList>"
    "  <Option name='MODEL' type='string' description='CMIR:QUERY: the trained model (.mat)'/>"
    "  <Option name='INDEX' type='string' description='CMIR:QUERY: the GeoPackage index built "
    "with MODEL'/>"
    "  <Option name='ROW' type='integer' min='0' description='CMIR:QUERY: query by a row of the "
    "index (give one of ROW, RASTER, AUDIO)'/>"
    "  <Option name='RASTER' type='string' description='CMIR:QUERY: query by any GDAL raster "
    "(1 band = PAN, the model MS band count = MS)'/>"
    "  <Option name='AUDIO' type='string' description='CMIR:QUERY: query by voice, a clip in any "
    "format libsndfile reads (image-speech models)'/>"
    "  <Option name='SRCWIN' type='string' description='CMIR:QUERY: xoff,yoff,xsize,ysize window "
    "of RASTER, in pixels'/>"
    "  <Option name='K' type='integer' min='1' max='100000' default='10' description='CMIR:QUERY: "
    "number of hits'/>"
    "  <Option name='TARGET' type='string-select' default='other' description='CMIR:QUERY: "
    "modality of the hits (other = cross-modal)'>"
    "    <Value>other</Value><Value>pan</Value><Value>ms</Value><Value>image</Value>"
    "<Value>audio</Value><Value>any</Value>"
    "  </Option>"
    "  <Option name='BBOX' type='string' description='CMIR:QUERY: minlon,minlat,maxlon,maxlat "
    "(WGS84): keep hits whose footprint meets it'/>"
    "  <Option name='MAX_DIST' type='float' min='0' description='CMIR:QUERY: keep hits nearer "
    "than this distance'/>"
    "  <Option name='THREADS' type='integer' min='0' default='0' description='CMIR:QUERY: "
    "threads (0 = all CPUs)'/>"
    "  <Option name='MAX_SUBDATASET_TILES' type='integer' min='0' default='100' "
    "description='archive: list the first N tiles as subdatasets (any tile opens by name)'/>"
    "</OpenOptionList>";

static const char *const SYNTAX =
    "Raster: a tile archive file.mat lists its subdatasets CMIR:\"file.mat\":PAN:n and "
    "CMIR:\"file.mat\":MS:n (n = 0-based tile number); CMIR:\"file\" opens any archive "
    "(also a .h5 DSRSID copy). Vector: CMIR:QUERY with -oo MODEL=m.mat -oo INDEX=i.gpkg "
    "-oo ROW=n (or RASTER=file [SRCWIN=x,y,w,h], or AUDIO=clip.wav) [K=10] "
    "[TARGET=other|pan|ms|image|audio|any] "
    "[BBOX=minlon,minlat,maxlon,maxlat] [MAX_DIST=d], or the same keys in the string: "
    "CMIR:QUERY?MODEL=m.mat&INDEX=i.gpkg&ROW=3&K=5";

/* Tiles an archive lists as subdatasets by default: like GDAL's own
 * multi-dataset drivers, a list that stays readable and fast for archives
 * of millions of tiles; the metadata says how to open any other tile. */
static const long long DEFAULT_LISTED_TILES = 100;

static const GByte HDF5_SIGNATURE[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* ---- connection strings ------------------------------------------------ */

struct CMIRConnection {
    bool query = false;
    std::string path;   /* archive */
    int modality = -1;  /* -1: the archive itself, else CMIR_PAN / CMIR_MS */
    long long tile = -1;
    std::string args;   /* CMIR:QUERY?args */
};

static bool ParseCount(const std::string &s, long long *out)
{
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
        return false;
    errno = 0;
    *out = std::strtoll(s.c_str(), nullptr, 10);
    return errno == 0;
}

/* The modality in "PAN:17" / "MS:3", or -1. */
static int ParseModality(const std::string &s)
{
    const std::string mod = s.substr(0, s.find(':'));
    return EQUAL(mod.c_str(), "PAN") ? CMIR_PAN : EQUAL(mod.c_str(), "MS") ? CMIR_MS : -1;
}

/* "PAN:17" / "MS:3" into the connection; false when it is not that. */
static bool ParseSubdataset(const std::string &s, CMIRConnection &c)
{
    const size_t colon = s.find(':');
    c.modality = ParseModality(s);
    return colon != std::string::npos && c.modality >= 0 && ParseCount(s.substr(colon + 1), &c.tile);
}

static bool ParseConnection(const char *name, CMIRConnection &c)
{
    const std::string rest(name + strlen("CMIR:"));
    if (STARTS_WITH_CI(rest.c_str(), "QUERY") && (rest.size() == 5 || rest[5] == '?')) {
        c.query = true;
        c.args = rest.size() > 5 ? rest.substr(6) : std::string();
        return true;
    }
    if (!rest.empty() && rest[0] == '"') {
        const size_t end = rest.find('"', 1);
        if (end == std::string::npos || end == 1)
            return false;
        c.path = rest.substr(1, end - 1);
        const std::string tail = rest.substr(end + 1);
        return tail.empty() || (tail[0] == ':' && ParseSubdataset(tail.substr(1), c));
    }
    /* unquoted: path[:PAN|MS:n], the subdataset part taken from the right */
    const size_t last = rest.rfind(':');
    const size_t prev = last == std::string::npos || last == 0 ? std::string::npos
                                                                : rest.rfind(':', last - 1);
    if (prev != std::string::npos && prev > 0 && ParseModality(rest.substr(prev + 1)) >= 0) {
        c.path = rest.substr(0, prev);
        return ParseSubdataset(rest.substr(prev + 1), c);
    }
    c.modality = -1;
    c.tile = -1;
    c.path = rest;
    return !rest.empty();
}

/* ---- temporary local files --------------------------------------------- */

/* A new private directory under CPL_TMPDIR, TMPDIR or /tmp; "" on failure. */
static std::string MakeTempDir()
{
    const char *base = CPLGetConfigOption("CPL_TMPDIR", nullptr);
    if (!base)
        base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cmir_gdal_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        CPLError(CE_Failure, CPLE_FileIO, "CMIR: cannot create a temporary directory %s: %s",
                 tmpl.c_str(), VSIStrerror(errno));
        return std::string();
    }
    return std::string(buf.data());
}

/* Opens an archive. libcmir reads through HDF5, which needs a local file: a /vsi path is
 * first copied to a private temporary file, which is unlinked as soon as HDF5 holds it open. */
static cmir_archive *OpenArchiveFile(const std::string &path)
{
    if (!STARTS_WITH(path.c_str(), "/vsi"))
        return cmir_archive_open(path.c_str());
    const std::string dir = MakeTempDir();
    if (dir.empty())
        return nullptr;
    const std::string local = dir + "/archive.mat";
    cmir_archive *a = nullptr;
    if (CPLCopyFile(local.c_str(), path.c_str()) != 0)
        CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: cannot copy %s to a local file", path.c_str());
    else
        a = cmir_archive_open(local.c_str());
    VSIUnlink(local.c_str());
    VSIRmdir(dir.c_str());
    return a;
}

static GDALDataType ToGDALType(cmir_dtype t)
{
    switch (t) {
    case CMIR_DT_UINT8: return GDT_Byte;
    case CMIR_DT_UINT16: return GDT_UInt16;
    case CMIR_DT_INT16: return GDT_Int16;
    case CMIR_DT_FLOAT32: return GDT_Float32;
    }
    return GDT_Unknown;
}

static const char *LayoutName(cmir_archive_layout l)
{
    switch (l) {
    case CMIR_LAYOUT_CMIR: return "CMIR";
    case CMIR_LAYOUT_DSRSID_MAT73: return "DSRSID_MAT73";
    case CMIR_LAYOUT_DSRSID_HDF5: return "DSRSID_HDF5";
    }
    return "UNKNOWN";
}

/* ==================================================================== */
/*                  Raster: an archive or one tile of it                */
/* ==================================================================== */

class CMIRRasterBand;

class CMIRDataset final : public GDALPamDataset
{
    friend class CMIRRasterBand;

    cmir_archive *m_archive = nullptr;
    std::string m_path;
    int m_modality = -1; /* -1: the archive (subdataset list only) */
    int64_t m_tile = -1;
    double m_gt[6] = {0, 1, 0, 0, 0, 1};
    bool m_hasGT = false;
    OGRSpatialReference m_srs;
    std::vector<GByte> m_pixels; /* the whole tile, H x W x bands, once read */
    bool m_tileRead = false;
    CPLStringList m_subdatasets;
    bool m_subdatasetsBuilt = false;
    int64_t m_listed = 0; /* tiles listed as subdatasets (the first ones) */

    CPLErr ReadTile();
    void BuildSubdatasets();

  public:
    ~CMIRDataset() override;
    CPLErr GetGeoTransform(double *gt) override;
    const OGRSpatialReference *GetSpatialRef() const override;
    char **GetMetadata(const char *domain = "") override;
    char **GetMetadataDomainList() override;

    static GDALDataset *Open(const CMIRConnection &c, bool quiet, CSLConstList openOptions);
};

class CMIRRasterBand final : public GDALPamRasterBand
{
    double m_nodata = 0;
    bool m_hasNodata = false;

  public:
    CMIRRasterBand(CMIRDataset *ds, int band, GDALDataType dt);
    CPLErr IReadBlock(int, int, void *image) override;
    double GetNoDataValue(int *success = nullptr) override;
};

CMIRRasterBand::CMIRRasterBand(CMIRDataset *ds, int band, GDALDataType dt)
{
    poDS = ds;
    nBand = band;
    eDataType = dt;
    nBlockXSize = ds->GetRasterXSize(); /* one block = the whole tile */
    nBlockYSize = ds->GetRasterYSize();
    const cmir_modality m = static_cast<cmir_modality>(ds->m_modality);
    GDALMajorObject::SetDescription(cmir_archive_band_name(ds->m_archive, m, band - 1));
    m_hasNodata = cmir_archive_nodata(ds->m_archive, m, &m_nodata) == CMIR_OK;
}

CPLErr CMIRRasterBand::IReadBlock(int, int, void *image)
{
    auto *ds = static_cast<CMIRDataset *>(poDS);
    if (ds->ReadTile() != CE_None)
        return CE_Failure;
    const int size = GDALGetDataTypeSizeBytes(eDataType);
    GDALCopyWords64(ds->m_pixels.data() + static_cast<size_t>(nBand - 1) * size, eDataType,
                    size * ds->GetRasterCount(), image, eDataType, size,
                    static_cast<GPtrDiff_t>(nBlockXSize) * nBlockYSize);
    return CE_None;
}

double CMIRRasterBand::GetNoDataValue(int *success)
{
    if (!m_hasNodata)
        return GDALPamRasterBand::GetNoDataValue(success);
    if (success)
        *success = TRUE;
    return m_nodata;
}

CMIRDataset::~CMIRDataset()
{
    GDALPamDataset::FlushCache(true);
    cmir_archive_close(m_archive);
}

CPLErr CMIRDataset::ReadTile()
{
    if (m_tileRead)
        return m_pixels.empty() ? CE_Failure : CE_None;
    m_tileRead = true;
    const size_t bytes = static_cast<size_t>(nRasterXSize) * nRasterYSize * nBands *
                         GDALGetDataTypeSizeBytes(GetRasterBand(1)->GetRasterDataType());
    try {
        m_pixels.resize(bytes);
    } catch (const std::bad_alloc &) {
        CPLError(CE_Failure, CPLE_OutOfMemory, "CMIR: cannot allocate a tile of %zu bytes", bytes);
        return CE_Failure;
    }
    if (cmir_archive_read_tile_raw(m_archive, static_cast<cmir_modality>(m_modality), m_tile,
                                   m_pixels.data()) != CMIR_OK) {
        CPLError(CE_Failure, CPLE_FileIO, "CMIR: %s", cmir_last_error());
        m_pixels.clear();
        return CE_Failure;
    }
    return CE_None;
}

CPLErr CMIRDataset::GetGeoTransform(double *gt)
{
    if (!m_hasGT)
        return GDALPamDataset::GetGeoTransform(gt);
    memcpy(gt, m_gt, sizeof m_gt);
    return CE_None;
}

const OGRSpatialReference *CMIRDataset::GetSpatialRef() const
{
    return m_srs.IsEmpty() ? GDALPamDataset::GetSpatialRef() : &m_srs;
}

/* The subdataset list, built on first request: a subdataset open never pays for it. */
void CMIRDataset::BuildSubdatasets()
{
    m_subdatasetsBuilt = true;
    const cmir_archive_info *info = cmir_archive_get_info(m_archive);
    static const char *const MOD[2] = {"PAN", "MS"};
    int n = 1;
    for (int64_t i = 0; i < info->n_tiles && i < m_listed; i++) {
        const int label = cmir_archive_label(m_archive, i);
        const char *cls = label > 0 ? cmir_archive_class_name(m_archive, label) : "unlabelled";
        for (int m = 0; m < 2; m++, n++) {
            const int h = m ? info->ms_h : info->pan_h, w = m ? info->ms_w : info->pan_w;
            const int b = m ? info->ms_bands : info->pan_bands;
            const char *t = cmir_dtype_name(m ? info->ms_type : info->pan_type);
            m_subdatasets.AddNameValue(CPLSPrintf("SUBDATASET_%d_NAME", n),
                                       CPLSPrintf("CMIR:\"%s\":%s:%lld", m_path.c_str(), MOD[m],
                                                  static_cast<long long>(i)));
            m_subdatasets.AddNameValue(CPLSPrintf("SUBDATASET_%d_DESC", n),
                                       CPLSPrintf("tile %lld, %s %dx%dx%d %s, class %s",
                                                  static_cast<long long>(i), MOD[m], h, w, b, t,
                                                  cls));
        }
    }
}

char **CMIRDataset::GetMetadata(const char *domain)
{
    if (m_modality < 0 && domain && EQUAL(domain, "SUBDATASETS")) {
        if (!m_subdatasetsBuilt)
            BuildSubdatasets();
        return m_subdatasets.List();
    }
    return GDALPamDataset::GetMetadata(domain);
}

char **CMIRDataset::GetMetadataDomainList()
{
    return BuildMetadataDomainList(GDALPamDataset::GetMetadataDomainList(), TRUE,
                                   m_modality < 0 ? "SUBDATASETS" : nullptr, nullptr);
}

GDALDataset *CMIRDataset::Open(const CMIRConnection &c, bool quiet, CSLConstList openOptions)
{
    long long listed = DEFAULT_LISTED_TILES;
    const char *maxTiles = CSLFetchNameValue(openOptions, "MAX_SUBDATASET_TILES");
    if (maxTiles && !ParseCount(maxTiles, &listed)) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "CMIR: MAX_SUBDATASET_TILES=%s: expected a number of tiles (0 or more)", maxTiles);
        return nullptr;
    }
    cmir_archive *a = OpenArchiveFile(c.path);
    if (!a) {
        if (quiet) /* a .mat that is no archive: let the other drivers (HDF5) try it */
            CPLDebug("CMIR", "%s", cmir_last_error());
        else
            CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s", cmir_last_error());
        return nullptr;
    }
    const cmir_archive_info *info = cmir_archive_get_info(a);
    if (c.modality >= 0 && (c.tile < 0 || c.tile >= info->n_tiles)) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "CMIR: %s has %lld tiles (0 to %lld): there is no tile %lld", c.path.c_str(),
                 static_cast<long long>(info->n_tiles), static_cast<long long>(info->n_tiles) - 1,
                 c.tile);
        cmir_archive_close(a);
        return nullptr;
    }
    auto ds = std::make_unique<CMIRDataset>();
    ds->m_archive = a;
    ds->m_path = c.path;
    ds->m_modality = c.modality;
    ds->m_tile = c.tile;
    ds->GDALDataset::SetMetadataItem("ARCHIVE_LAYOUT", LayoutName(info->layout));
    if (c.modality < 0) { /* no bands: the tiles are its subdatasets */
        ds->nRasterXSize = 0;
        ds->nRasterYSize = 0;
        const long long n = static_cast<long long>(info->n_tiles);
        ds->m_listed = listed < n ? listed : n;
        ds->GDALDataset::SetMetadataItem("N_TILES", CPLSPrintf("%lld", n));
        ds->GDALDataset::SetMetadataItem("LISTED_TILES",
                                         CPLSPrintf("%lld", static_cast<long long>(ds->m_listed)));
        ds->GDALDataset::SetMetadataItem(
            "TILE_SYNTAX", CPLSPrintf("CMIR:\"%s\":PAN:n or CMIR:\"%s\":MS:n, n = 0 to %lld",
                                      c.path.c_str(), c.path.c_str(), n - 1));
        if (ds->m_listed < n)
            ds->GDALDataset::SetMetadataItem(
                "SUBDATASETS_NOTE",
                CPLSPrintf("the first %lld of %lld tiles are listed as subdatasets; open any tile "
                           "by TILE_SYNTAX, or list more with -oo MAX_SUBDATASET_TILES=N",
                           static_cast<long long>(ds->m_listed), n));
        std::string names;
        for (int k = 1; k <= info->n_classes; k++)
            names += (k > 1 ? ";" : "") + std::string(cmir_archive_class_name(a, k));
        ds->GDALDataset::SetMetadataItem("CLASS_NAMES", names.c_str());
        ds->GDALDataset::SetMetadataItem("HAS_GEOREFERENCING", info->has_georef ? "YES" : "NO");
        ds->SetDescription(c.path.c_str());
        ds->TryLoadXML();
        return ds.release();
    }

    const cmir_modality m = static_cast<cmir_modality>(c.modality);
    ds->nRasterXSize = m == CMIR_MS ? info->ms_w : info->pan_w;
    ds->nRasterYSize = m == CMIR_MS ? info->ms_h : info->pan_h;
    const int bands = m == CMIR_MS ? info->ms_bands : info->pan_bands;
    const GDALDataType dt = ToGDALType(m == CMIR_MS ? info->ms_type : info->pan_type);
    for (int b = 1; b <= bands; b++)
        ds->SetBand(b, new CMIRRasterBand(ds.get(), b, dt));
    ds->m_hasGT = cmir_archive_geotransform(a, m, c.tile, ds->m_gt) == CMIR_OK &&
                  std::isfinite(ds->m_gt[0]) && std::isfinite(ds->m_gt[1]);
    const char *wkt = cmir_archive_crs(a, c.tile);
    if (wkt && *wkt) {
        CPLPushErrorHandler(CPLQuietErrorHandler);
        const OGRErr err = ds->m_srs.importFromWkt(wkt);
        CPLPopErrorHandler();
        ds->m_srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER); /* x = easting/longitude */
        if (err != OGRERR_NONE) {
            CPLError(CE_Warning, CPLE_AppDefined,
                     "CMIR: %s tile %lld: the recorded CRS is not valid WKT; none is set",
                     c.path.c_str(), c.tile);
            ds->m_srs.Clear();
        }
    }

    /* tile metadata: class, labels, source scene and window */
    const int label = cmir_archive_label(a, c.tile);
    ds->GDALDataset::SetMetadataItem("TILE", CPLSPrintf("%lld", c.tile));
    ds->GDALDataset::SetMetadataItem("MODALITY", m == CMIR_MS ? "MS" : "PAN");
    ds->GDALDataset::SetMetadataItem("CLASS", CPLSPrintf("%d", label));
    if (label > 0)
        ds->GDALDataset::SetMetadataItem("CLASS_NAME", cmir_archive_class_name(a, label));
    std::vector<uint8_t> ml(static_cast<size_t>(info->n_classes) + 1);
    if (info->n_classes > 0 && cmir_archive_multilabel(a, c.tile, ml.data()) == CMIR_OK) {
        std::string labels;
        for (int k = 0; k < info->n_classes; k++)
            if (ml[k])
                labels += (labels.empty() ? "" : ";") + std::string(cmir_archive_class_name(a, k + 1));
        ds->GDALDataset::SetMetadataItem("LABELS", labels.c_str());
    }
    if (const char *scene = cmir_archive_scene(a, c.tile))
        ds->GDALDataset::SetMetadataItem("SCENE", scene);
    double win[4];
    if (cmir_archive_window(a, m, c.tile, win) == CMIR_OK && std::isfinite(win[0]))
        ds->GDALDataset::SetMetadataItem(
            "SOURCE_WINDOW", CPLSPrintf("%.15g,%.15g,%.15g,%.15g", win[0], win[1], win[2], win[3]));
    ds->GDALDataset::SetMetadataItem("ARCHIVE", c.path.c_str());
    ds->GDALDataset::SetMetadataItem("INTERLEAVE", "PIXEL", "IMAGE_STRUCTURE");

    /* PAM (.aux.xml) lives beside the archive, one node per subdataset */
    ds->SetDescription(CPLSPrintf("CMIR:\"%s\":%s:%lld", c.path.c_str(),
                                  m == CMIR_MS ? "MS" : "PAN", c.tile));
    ds->SetPhysicalFilename(c.path.c_str());
    ds->SetSubdatasetName(CPLSPrintf("%s:%lld", m == CMIR_MS ? "MS" : "PAN", c.tile));
    ds->TryLoadXML();
    return ds.release();
}

/* ==================================================================== */
/*                 Vector: a retrieval query and its hits               */
/* ==================================================================== */

class CMIRQueryDataset final : public GDALDataset
{
    GDALDataset *m_hits = nullptr; /* the GeoJSON written by cmir_search */
    std::string m_dir, m_file;

  public:
    ~CMIRQueryDataset() override;
    int GetLayerCount() override { return m_hits ? m_hits->GetLayerCount() : 0; }
    OGRLayer *GetLayer(int i) override { return m_hits ? m_hits->GetLayer(i) : nullptr; }
    int TestCapability(const char *) override { return FALSE; }

    static GDALDataset *Open(const char *name, const std::string &args, CSLConstList openOptions);
};

CMIRQueryDataset::~CMIRQueryDataset()
{
    if (m_hits)
        GDALClose(m_hits);
    if (!m_file.empty())
        VSIUnlink(m_file.c_str());
    if (!m_dir.empty())
        VSIRmdir(m_dir.c_str());
}

static bool QueryFail(CPL_FORMAT_STRING(const char *fmt), ...) CPL_PRINT_FUNC_FORMAT(1, 2);

static bool QueryFail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    CPLErrorV(CE_Failure, CPLE_IllegalArg, fmt, args);
    va_end(args);
    return false;
}

static bool ParseDoubles(const char *key, const char *value, int n, double *out)
{
    const CPLStringList parts(CSLTokenizeString2(value, ",", 0));
    if (parts.size() != n)
        return QueryFail("CMIR: %s takes %d comma-separated numbers", key, n);
    for (int i = 0; i < n; i++) {
        char *end = nullptr;
        out[i] = CPLStrtod(parts[i], &end);
        if (end == parts[i] || *end || !std::isfinite(out[i]))
            return QueryFail("CMIR: %s: '%s' is not a number", key, parts[i]);
    }
    return true;
}

/* KEY=VALUE pairs, from the connection string and the open options, into a cmir_query and
 * cmir_search_params. */
static bool ParseQuery(const CPLStringList &kv, cmir_query &q, cmir_search_params &p,
                       std::string &model, std::string &index, std::string &raster, std::string &audio)
{
    const char *v;
    model = kv.FetchNameValueDef("MODEL", "");
    index = kv.FetchNameValueDef("INDEX", "");
    if (model.empty() || index.empty())
        return QueryFail("CMIR: CMIR:QUERY needs MODEL=model.mat and INDEX=index.gpkg");
    const char *row = kv.FetchNameValue("ROW"), *ras = kv.FetchNameValue("RASTER");
    const char *aud = kv.FetchNameValue("AUDIO");
    if ((row != nullptr) + (ras != nullptr) + (aud != nullptr) != 1)
        return QueryFail("CMIR: CMIR:QUERY needs exactly one of ROW=n, RASTER=file and AUDIO=clip");
    memset(&q, 0, sizeof q);
    if (aud) {
        audio = aud;
        q.kind = CMIR_QUERY_AUDIO;
        q.audio = audio.c_str();
        if (kv.FetchNameValue("SRCWIN"))
            return QueryFail("CMIR: SRCWIN goes with RASTER, not AUDIO");
    } else if (row) {
        long long r;
        if (!ParseCount(row, &r))
            return QueryFail("CMIR: ROW=%s is not a row number", row);
        q.kind = CMIR_QUERY_ROW;
        q.row = r;
        if (kv.FetchNameValue("SRCWIN"))
            return QueryFail("CMIR: SRCWIN goes with RASTER, not ROW");
    } else {
        raster = ras;
        q.kind = CMIR_QUERY_RASTER;
        q.raster = raster.c_str();
        if ((v = kv.FetchNameValue("SRCWIN")) != nullptr) {
            double w[4];
            if (!ParseDoubles("SRCWIN", v, 4, w))
                return false;
            for (int i = 0; i < 4; i++) {
                if (w[i] != std::floor(w[i]) || w[i] < 0 || w[i] > INT_MAX || (i >= 2 && w[i] < 1))
                    return QueryFail("CMIR: SRCWIN=%s: expected xoff,yoff,xsize,ysize in pixels", v);
                q.window[i] = static_cast<int>(w[i]);
            }
            q.has_window = 1;
        }
    }
    if ((v = kv.FetchNameValue("K")) != nullptr) {
        long long k;
        if (!ParseCount(v, &k) || k < 1 || k > 100000)
            return QueryFail("CMIR: K=%s: expected 1 to 100000", v);
        p.k = static_cast<int>(k);
    }
    if ((v = kv.FetchNameValue("THREADS")) != nullptr) {
        long long t;
        if (!ParseCount(v, &t) || t > 1024)
            return QueryFail("CMIR: THREADS=%s: expected 0 (all CPUs) to 1024", v);
        p.threads = static_cast<int>(t);
    }
    if ((v = kv.FetchNameValue("TARGET")) != nullptr) {
        if (EQUAL(v, "pan") || EQUAL(v, "image"))
            p.filter.modality = CMIR_PAN;
        else if (EQUAL(v, "ms") || EQUAL(v, "audio"))
            p.filter.modality = CMIR_MS;
        else if (EQUAL(v, "any"))
            p.filter.modality = -1;
        else if (!EQUAL(v, "other")) /* other: keep cmir_search's cross-modal default */
            return QueryFail("CMIR: TARGET=%s: expected other, pan, ms, image, audio or any", v);
    }
    if ((v = kv.FetchNameValue("BBOX")) != nullptr) {
        if (!ParseDoubles("BBOX", v, 4, p.filter.bbox))
            return false;
        p.filter.has_bbox = 1;
    }
    if ((v = kv.FetchNameValue("MAX_DIST")) != nullptr) {
        double d = 0;
        if (!ParseDoubles("MAX_DIST", v, 1, &d))
            return false;
        if (d < 0)
            return QueryFail("CMIR: MAX_DIST=%s: expected a distance >= 0", v);
        p.filter.max_dist = static_cast<float>(d);
    }
    return true;
}

/* The keys of a query; GDAL checks open options against OPEN_OPTIONS itself (and programs add
 * their own, e.g. NATIVE_DATA), the connection string is checked here. */
static bool KnownQueryKey(const char *key)
{
    static const char *const KEYS[] = {"MODEL", "INDEX",  "ROW",  "RASTER",   "SRCWIN", "AUDIO",
                                       "K",     "TARGET", "BBOX", "MAX_DIST", "THREADS"};
    for (const char *k : KEYS)
        if (EQUAL(key, k))
            return true;
    return false;
}

GDALDataset *CMIRQueryDataset::Open(const char *name, const std::string &args,
                                    CSLConstList openOptions)
{
    /* CMIR:QUERY?KEY=VALUE&... (URL-escaped values allowed), then the open options, which win */
    CPLStringList kv;
    const CPLStringList pairs(CSLTokenizeString2(args.c_str(), "&", 0));
    for (int i = 0; i < pairs.size(); i++) {
        char *plain = CPLUnescapeString(pairs[i], nullptr, CPLES_URL);
        char *key = nullptr;
        CPLParseNameValue(plain, &key);
        const bool good = key && KnownQueryKey(key);
        if (good)
            kv.AddString(plain);
        else
            QueryFail("CMIR: '%s' in the connection string is not KEY=VALUE with KEY one of MODEL, "
                      "INDEX, ROW, RASTER, SRCWIN, AUDIO, K, TARGET, BBOX, MAX_DIST, THREADS",
                      plain);
        CPLFree(key);
        CPLFree(plain);
        if (!good)
            return nullptr;
    }
    for (CSLConstList o = openOptions; o && *o; o++) {
        char *key = nullptr;
        const char *value = CPLParseNameValue(*o, &key);
        if (key && value)
            kv.SetNameValue(key, value);
        CPLFree(key);
    }
    cmir_query q;
    cmir_search_params p = cmir_search_default_params();
    std::string model, index, raster, audio;
    if (!ParseQuery(kv, q, p, model, index, raster, audio))
        return nullptr;

    /* cmir_search writes its result atomically through a temporary file and rename(), so the
     * hits go to a private local directory, removed when the data source is closed. */
    auto ds = std::make_unique<CMIRQueryDataset>();
    ds->m_dir = MakeTempDir();
    if (ds->m_dir.empty())
        return nullptr;
    ds->m_file = ds->m_dir + "/hits.geojson";
    p.format = "GeoJSON";
    if (cmir_search(model.c_str(), index.c_str(), &q, 1, ds->m_file.c_str(), p, nullptr, nullptr) !=
        CMIR_OK) {
        CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s", cmir_last_error());
        return nullptr;
    }
    const char *const drivers[] = {"GeoJSON", nullptr};
    ds->m_hits = GDALDataset::Open(ds->m_file.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, drivers);
    if (!ds->m_hits) {
        CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: cannot read back the hits of the query");
        return nullptr;
    }
    ds->SetDescription(name);
    return ds.release();
}

/* ==================================================================== */
/*                            The driver                                */
/* ==================================================================== */

/* Cheap and strict: the CMIR: prefix, or a .mat file that starts as an HDF5 file (plain, or
 * MATLAB v7.3 with the HDF5 superblock after the 512-byte header). Other HDF5 files stay with
 * GDAL's HDF5 driver. */
static int CMIRIdentify(GDALOpenInfo *info)
{
    if (STARTS_WITH_CI(info->pszFilename, "CMIR:"))
        return TRUE;
    if (!info->fpL || info->nHeaderBytes < 8 || !EQUAL(CPLGetExtension(info->pszFilename), "mat"))
        return FALSE;
    const GByte *h = info->pabyHeader;
    if (memcmp(h, HDF5_SIGNATURE, 8) == 0)
        return TRUE;
    return info->nHeaderBytes >= 520 && memcmp(h, "MATLAB 7.3 MAT-file", 19) == 0 &&
           memcmp(h + 512, HDF5_SIGNATURE, 8) == 0;
}

static GDALDataset *CMIROpen(GDALOpenInfo *info)
{
    if (!CMIRIdentify(info))
        return nullptr;
    const bool prefixed = STARTS_WITH_CI(info->pszFilename, "CMIR:");
    const bool raster = (info->nOpenFlags & GDAL_OF_RASTER) != 0;
    const bool vector = (info->nOpenFlags & GDAL_OF_VECTOR) != 0;
    if (!prefixed) {
        if (!raster || info->eAccess == GA_Update)
            return nullptr;
        CMIRConnection c;
        c.path = info->pszFilename;
        return CMIRDataset::Open(c, true, info->papszOpenOptions);
    }
    CMIRConnection c;
    if (!ParseConnection(info->pszFilename, c)) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "CMIR: bad connection string '%s': expected CMIR:\"file.mat\", "
                 "CMIR:\"file.mat\":PAN:n, CMIR:\"file.mat\":MS:n or CMIR:QUERY[?KEY=VALUE&...]",
                 info->pszFilename);
        return nullptr;
    }
    if (info->eAccess == GA_Update) {
        CPLError(CE_Failure, CPLE_NotSupported, "CMIR: the driver is read-only");
        return nullptr;
    }
    if (c.query) {
        if (!vector) {
            CPLError(CE_Failure, CPLE_OpenFailed,
                     "CMIR: CMIR:QUERY is a vector data source (use ogrinfo or ogr2ogr)");
            return nullptr;
        }
        return CMIRQueryDataset::Open(info->pszFilename, c.args, info->papszOpenOptions);
    }
    if (!raster) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "CMIR: %s is a raster tile archive (use gdalinfo); vector data sources are "
                 "CMIR:QUERY",
                 c.path.c_str());
        return nullptr;
    }
    return CMIRDataset::Open(c, false, info->papszOpenOptions);
}

extern "C" __attribute__((visibility("default"))) void GDALRegister_CMIR();

void GDALRegister_CMIR()
{
    if (!GDAL_CHECK_VERSION("CMIR"))
        return;
    if (GDALGetDriverByName("CMIR") != nullptr)
        return;
    auto *d = new GDALDriver();
    d->SetDescription("CMIR");
    d->SetMetadataItem(GDAL_DCAP_RASTER, "YES");
    d->SetMetadataItem(GDAL_DCAP_VECTOR, "YES");
    d->SetMetadataItem(GDAL_DMD_LONGNAME,
                       "CMIR-NET tile archives (CMIR:\"file.mat\":PAN|MS:n) and cross-modal "
                       "retrieval queries (CMIR:QUERY)");
    d->SetMetadataItem(GDAL_DMD_EXTENSIONS, "mat");
    d->SetMetadataItem(GDAL_DMD_HELPTOPIC, DRIVER_HELP);
    d->SetMetadataItem(GDAL_DMD_CONNECTION_PREFIX, "CMIR:");
    d->SetMetadataItem(GDAL_DMD_SUBDATASETS, "YES");
    d->SetMetadataItem(GDAL_DCAP_VIRTUALIO, "YES");
    d->SetMetadataItem(GDAL_DMD_OPENOPTIONLIST, OPEN_OPTIONS);
    d->SetMetadataItem("CMIR_SYNTAX", SYNTAX);
    d->SetMetadataItem("CMIR_VERSION", cmir_version());
    d->pfnIdentify = CMIRIdentify;
    d->pfnOpen = CMIROpen;
    GetGDALDriverManager()->RegisterDriver(d);
}
