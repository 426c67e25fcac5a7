/* gdal_CMIR: the GDAL driver plugin "CMIR". Raster side: a tile archive lists one subdataset
 * per tile and modality (CMIR:"a.mat":PAN|MS:n, 0-based); vector side: CMIR:QUERY runs a
 * retrieval (cmir_search_run) and exposes its ranked hits as an in-memory layer. A thin shim
 * over libcmir. */

#include "cmir/archive.h"
#include "cmir/index.h"
#include "cmir/model.h"

#include "cpl_conv.h"
#include "cpl_string.h"
#include "cpl_vsi.h"
#include "gdal_pam.h"
#include "gdal_priv.h"
#include "ogr_spatialref.h"
#include "ogrsf_frmts.h"

#include <cerrno>
#include <climits>
#include <memory>
#include <mutex>
#include <cstdarg>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

static const char *const DRIVER_HELP = "gdal_plugin/README.md in the CMIR sources";

#define CMIR_STR2(x) #x
#define CMIR_STR(x) CMIR_STR2(x)

/* The keys of CMIR:QUERY, listed once: the open option list, the check of the connection string
 * and its message are made from this table. */
struct QueryKey {
    const char *name, *attributes, *description;
};
static const QueryKey QUERY_KEYS[] = {
    {"MODEL", "type='string'", "the trained model (.mat)"},
    {"INDEX", "type='string'", "the GeoPackage index built with MODEL"},
    {"ROW", "type='integer' min='0'", "query by a row of the index (give one of ROW, RASTER, AUDIO)"},
    {"RASTER", "type='string'", "query by any GDAL raster (1 band = PAN, the model MS band count = MS)"},
    {"AUDIO", "type='string'",
     "query by voice, a clip in any format libsndfile reads (image-speech models)"},
    {"SRCWIN", "type='string'", "xoff,yoff,xsize,ysize window of RASTER, in pixels"},
    {"K", "type='integer' min='1' max='" CMIR_STR(CMIR_SEARCH_K_MAX) "' default='10'", "number of hits"},
    {"TARGET", "type='string-select' default='other'", "modality of the hits (other = cross-modal)"},
    {"BBOX", "type='string'", "minlon,minlat,maxlon,maxlat (WGS84): keep hits whose footprint meets it"},
    {"MAX_DIST", "type='float' min='0'", "keep hits nearer than this distance"},
    {"THREADS", "type='integer' min='0' default='0'", "threads (0 = all CPUs)"},
};

/* TARGET's values. */
static const struct {
    const char *name;
    cmir_target target;
} TARGETS[] = {{"other", CMIR_TARGET_OTHER}, {"pan", CMIR_TARGET_PAN},     {"ms", CMIR_TARGET_MS},
               {"image", CMIR_TARGET_IMAGE}, {"audio", CMIR_TARGET_AUDIO}, {"any", CMIR_TARGET_ANY}};

static std::string OpenOptionList()
{
    std::string x = "<OpenOptionList>";
    for (const QueryKey &k : QUERY_KEYS) {
        x += CPLSPrintf("<Option name='%s' %s description='CMIR:QUERY: %s'", k.name, k.attributes,
                        k.description);
        if (!EQUAL(k.name, "TARGET")) {
            x += "/>";
            continue;
        }
        x += ">";
        for (const auto &t : TARGETS)
            x += CPLSPrintf("<Value>%s</Value>", t.name);
        x += "</Option>";
    }
    x += "<Option name='MAX_SUBDATASET_TILES' type='integer' min='0' default='100' "
         "description='archive: list the first N tiles as subdatasets (any tile opens by name)'/>";
    return x + "</OpenOptionList>";
}

/* "MODEL, INDEX, ..." */
static std::string QueryKeyNames()
{
    std::string names;
    for (const QueryKey &k : QUERY_KEYS)
        names += std::string(names.empty() ? "" : ", ") + k.name;
    return names;
}

static const char *const SYNTAX =
    "Raster: a tile archive file.mat lists its subdatasets CMIR:\"file.mat\":PAN:n and "
    "CMIR:\"file.mat\":MS:n (n = 0-based tile number); CMIR:\"file\" opens any archive "
    "(also a .h5 DSRSID copy). Vector: CMIR:QUERY with the open options (-oo KEY=VALUE), or "
    "the same keys in the string: CMIR:QUERY?MODEL=m.mat&INDEX=i.gpkg&ROW=3&K=5. By file path (for "
    "QGIS Processing): a query file q.cmirq (first line CMIR-QUERY 1, then the same KEY=VALUE lines) "
    "and a tile file t.cmirt (CMIR-TILE 1, then ARCHIVE=file.mat, MODALITY=PAN|MS, TILE=n)";

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
    GDALColorInterp GetColorInterpretation() override;
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

/* The source scene's colour interpretation, which the archive keeps as the band's name when the
 * scene's band had no other description (cmir_tile): Blue, Green, Red... (NIR has none in GDAL 3.6
 * and stays Undefined, as in the scene); a one-band tile without one is Gray, as a GeoTIFF. A PAM
 * (.aux.xml) setting wins. */
GDALColorInterp CMIRRasterBand::GetColorInterpretation()
{
    const GDALColorInterp pam = GDALPamRasterBand::GetColorInterpretation();
    if (pam != GCI_Undefined)
        return pam;
    const GDALColorInterp byName = GDALGetColorInterpretationByName(GetDescription());
    if (byName != GCI_Undefined)
        return byName;
    return poDS->GetRasterCount() == 1 ? GCI_GrayIndex : GCI_Undefined;
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
    /* SCENE: the file SOURCE_WINDOW is in (an MS tile's own MS scene, when the archive records
     * it); an MS tile also names its PAN scene */
    if (const char *scene = cmir_archive_source(a, m, c.tile))
        ds->GDALDataset::SetMetadataItem("SCENE", scene);
    if (m == CMIR_MS)
        if (const char *pan = cmir_archive_scene(a, c.tile))
            ds->GDALDataset::SetMetadataItem("PAN_SCENE", pan);
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

/* The model and index of the last query, kept open for the next queries on the same files (a
 * program, e.g. QGIS, opens a data source several times): reloaded when either file changed,
 * closed when the driver is unloaded. One search at a time: it writes the model's scratch. */
struct QueryCache {
    std::mutex lock;
    std::string model_path, index_path;
    VSIStatBufL model_st{}, index_st{};
    cmir_model *model = nullptr;
    cmir_index *index = nullptr;

    void Close()
    {
        cmir_index_close(index);
        cmir_model_free(model);
        index = nullptr;
        model = nullptr;
    }
    /* The model and index of these files, opened or kept; false with a GDAL error. */
    bool Open(const std::string &m, const std::string &ix)
    {
        VSIStatBufL ms{}, is{};
        const bool stat_ok = VSIStatL(m.c_str(), &ms) == 0 && VSIStatL(ix.c_str(), &is) == 0;
        if (model && stat_ok && m == model_path && ix == index_path && Same(ms, model_st) &&
            Same(is, index_st)) {
            CPLDebug("CMIR", "CMIR:QUERY: model %s and index %s kept open", m.c_str(), ix.c_str());
            return true;
        }
        Close();
        CPLDebug("CMIR", "CMIR:QUERY: loading model %s and index %s", m.c_str(), ix.c_str());
        model = cmir_model_load(m.c_str());
        index = model ? cmir_index_open(ix.c_str()) : nullptr;
        if (!index) {
            CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s", cmir_last_error());
            Close();
            return false;
        }
        model_path = m;
        index_path = ix;
        model_st = ms;
        index_st = is;
        return true;
    }
    static bool Same(const VSIStatBufL &a, const VSIStatBufL &b)
    {
        return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
               a.st_mtime == b.st_mtime;
    }
};
static QueryCache *g_cache = nullptr;

/* The hits of one query, an in-memory layer (GDAL's Memory driver) filled by libcmir. */
class CMIRQueryDataset final : public GDALDataset
{
    GDALDataset *m_hits = nullptr;

  public:
    ~CMIRQueryDataset() override
    {
        if (m_hits)
            GDALClose(m_hits);
    }
    int GetLayerCount() override { return m_hits ? m_hits->GetLayerCount() : 0; }
    OGRLayer *GetLayer(int i) override { return m_hits ? m_hits->GetLayer(i) : nullptr; }
    int TestCapability(const char *) override { return FALSE; }

    static GDALDataset *Open(const char *name, const std::string &args, CSLConstList openOptions);
    static GDALDataset *OpenKeys(const char *name, CPLStringList &kv, CSLConstList openOptions);
};

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

/* The query itself: ROW, RASTER [SRCWIN] or AUDIO. */
static bool ParseQueryItself(const CPLStringList &kv, cmir_query &q, std::string &raster,
                             std::string &audio)
{
    const char *row = kv.FetchNameValue("ROW"), *ras = kv.FetchNameValue("RASTER");
    const char *aud = kv.FetchNameValue("AUDIO"), *win = kv.FetchNameValue("SRCWIN");
    if ((row != nullptr) + (ras != nullptr) + (aud != nullptr) != 1)
        return QueryFail("CMIR: CMIR:QUERY needs exactly one of ROW=n, RASTER=file and AUDIO=clip");
    memset(&q, 0, sizeof q);
    if (win && !ras)
        return QueryFail("CMIR: SRCWIN goes with RASTER, not %s", aud ? "AUDIO" : "ROW");
    if (aud) {
        audio = aud;
        q.kind = CMIR_QUERY_AUDIO;
        q.audio = audio.c_str();
    } else if (row) {
        long long r;
        if (!ParseCount(row, &r))
            return QueryFail("CMIR: ROW=%s is not a row number", row);
        q.kind = CMIR_QUERY_ROW;
        q.row = r;
    } else {
        raster = ras;
        q.kind = CMIR_QUERY_RASTER;
        q.raster = raster.c_str();
        double w[4];
        if (win && !ParseDoubles("SRCWIN", win, 4, w))
            return false;
        for (int i = 0; win && i < 4; i++) {
            if (w[i] != std::floor(w[i]) || w[i] < 0 || w[i] > INT_MAX || (i >= 2 && w[i] < 1))
                return QueryFail("CMIR: SRCWIN=%s: expected xoff,yoff,xsize,ysize in pixels", win);
            q.window[i] = static_cast<int>(w[i]);
        }
        q.has_window = win != nullptr;
    }
    return true;
}

/* KEY=VALUE pairs, from the connection string and the open options, into a cmir_query and
 * cmir_search_params. */
static bool ParseQuery(const CPLStringList &kv, cmir_query &q, cmir_search_params &p,
                       std::string &raster, std::string &audio)
{
    const char *v;
    if (!kv.FetchNameValue("MODEL") || !kv.FetchNameValue("INDEX") || !*kv.FetchNameValue("MODEL") ||
        !*kv.FetchNameValue("INDEX"))
        return QueryFail("CMIR: CMIR:QUERY needs MODEL=model.mat and INDEX=index.gpkg");
    if (!ParseQueryItself(kv, q, raster, audio))
        return false;
    if ((v = kv.FetchNameValue("K")) != nullptr) {
        long long k;
        if (!ParseCount(v, &k) || k < 1 || k > CMIR_SEARCH_K_MAX)
            return QueryFail("CMIR: K=%s: expected 1 to %d", v, CMIR_SEARCH_K_MAX);
        p.k = static_cast<int>(k);
    }
    if ((v = kv.FetchNameValue("THREADS")) != nullptr) {
        long long t;
        if (!ParseCount(v, &t) || t > 1024)
            return QueryFail("CMIR: THREADS=%s: expected 0 (all CPUs) to 1024", v);
        p.threads = static_cast<int>(t);
    }
    if ((v = kv.FetchNameValue("TARGET")) != nullptr) {
        bool known = false;
        for (const auto &t : TARGETS)
            if (EQUAL(v, t.name)) {
                p.filter.modality = t.target;
                known = true;
            }
        if (!known)
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

/* Whether key is one of QUERY_KEYS; GDAL checks open options against the open option list
 * itself (and programs add their own, e.g. NATIVE_DATA), the connection string is checked here. */
static bool KnownQueryKey(const char *key)
{
    for (const QueryKey &k : QUERY_KEYS)
        if (EQUAL(key, k.name))
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
            QueryFail("CMIR: '%s' in the connection string is not KEY=VALUE with KEY one of %s",
                      plain, QueryKeyNames().c_str());
        CPLFree(key);
        CPLFree(plain);
        if (!good)
            return nullptr;
    }
    return OpenKeys(name, kv, openOptions);
}

/* The query of kv (checked KEY=VALUE pairs), the open options winning. */
GDALDataset *CMIRQueryDataset::OpenKeys(const char *name, CPLStringList &kv, CSLConstList openOptions)
{
    for (CSLConstList o = openOptions; o && *o; o++) {
        char *key = nullptr;
        const char *value = CPLParseNameValue(*o, &key);
        if (key && value)
            kv.SetNameValue(key, value);
        CPLFree(key);
    }
    cmir_query q;
    cmir_search_params p = cmir_search_default_params();
    std::string raster, audio;
    if (!ParseQuery(kv, q, p, raster, audio))
        return nullptr;

    cmir_hits *hits = nullptr;
    {
        std::lock_guard<std::mutex> hold(g_cache->lock);
        if (!g_cache->Open(kv.FetchNameValue("MODEL"), kv.FetchNameValue("INDEX")))
            return nullptr;
        if (cmir_search_run(g_cache->model, g_cache->index, &q, 1, p, nullptr, nullptr, &hits) !=
            CMIR_OK) {
            CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s", cmir_last_error());
            return nullptr;
        }
    }
    auto ds = std::make_unique<CMIRQueryDataset>();
    GDALDriver *mem = GetGDALDriverManager()->GetDriverByName("Memory");
    ds->m_hits = mem ? mem->Create("", 0, 0, 0, GDT_Unknown, nullptr) : nullptr;
    const int rc = ds->m_hits ? cmir_hits_to_ogr(hits, GDALDataset::ToHandle(ds->m_hits), nullptr)
                              : CMIR_EUNSUPPORTED;
    cmir_hits_free(hits);
    if (rc != CMIR_OK) {
        CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s",
                 ds->m_hits ? cmir_last_error() : "GDAL's Memory driver is needed");
        return nullptr;
    }
    ds->SetDescription(name);
    return ds.release();
}

/* ==================================================================== */
/*                            The driver                                */
/* ==================================================================== */

/* ==================================================================== */
/*          Query files (.cmirq) and tile files (.cmirt)                */
/* ==================================================================== */

/* A key file's extension and magic line (cmir/index.h): 'q', 't' or 0. */
static char KeyFileKind(GDALOpenInfo *info)
{
    const char *ext = CPLGetExtension(info->pszFilename);
    const char *h = reinterpret_cast<const char *>(info->pabyHeader);
    if (!info->fpL || info->nHeaderBytes < 10)
        return 0;
    if (EQUAL(ext, "cmirq") && STARTS_WITH(h, CMIR_QUERY_FILE_MAGIC " "))
        return 'q';
    if (EQUAL(ext, "cmirt") && STARTS_WITH(h, CMIR_TILE_FILE_MAGIC " "))
        return 't';
    return 0;
}

/* Opens a .cmirq (the hits of its query, vector) or a .cmirt (its tile, raster). */
static GDALDataset *OpenKeyFile(GDALOpenInfo *info, char kind)
{
    const bool raster = (info->nOpenFlags & GDAL_OF_RASTER) != 0;
    const bool vector = (info->nOpenFlags & GDAL_OF_VECTOR) != 0;
    if ((kind == 'q' && !vector) || (kind == 't' && !raster) || info->eAccess == GA_Update)
        return nullptr; /* quietly: QGIS tries update first, then read-only */
    char **pairs = nullptr;
    if (cmir_keyfile_read(info->pszFilename, kind == 'q' ? CMIR_QUERY_FILE_MAGIC : CMIR_TILE_FILE_MAGIC,
                          &pairs) != CMIR_OK) {
        CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s", cmir_last_error());
        return nullptr;
    }
    CPLStringList kv;
    for (char **p = pairs; *p; p++)
        kv.AddString(*p);
    cmir_keyfile_free(pairs);
    static const char *const TILE_KEYS[] = {"ARCHIVE", "MODALITY", "TILE"};
    for (int i = 0; i < kv.size(); i++) {
        const std::string key = std::string(kv[i]).substr(0, std::string(kv[i]).find('='));
        bool known = kind == 'q' && KnownQueryKey(key.c_str());
        for (const char *k : TILE_KEYS)
            known = known || (kind == 't' && EQUAL(key.c_str(), k));
        if (!known) {
            CPLError(CE_Failure, CPLE_OpenFailed, "CMIR: %s: unknown key %s (expected %s)", info->pszFilename,
                     key.c_str(), kind == 'q' ? QueryKeyNames().c_str() : "ARCHIVE, MODALITY, TILE");
            return nullptr;
        }
    }
    if (kind == 'q')
        return CMIRQueryDataset::OpenKeys(info->pszFilename, kv, info->papszOpenOptions);
    CMIRConnection c;
    const char *archive = kv.FetchNameValue("ARCHIVE"), *mod = kv.FetchNameValue("MODALITY");
    const char *tile = kv.FetchNameValue("TILE");
    c.modality = mod ? ParseModality(mod) : -1;
    if (!archive || !*archive || c.modality < 0 || !tile || !ParseCount(tile, &c.tile)) {
        CPLError(CE_Failure, CPLE_OpenFailed,
                 "CMIR: %s: a tile file needs ARCHIVE=file.mat, MODALITY=PAN or MS and TILE=n (0-based)",
                 info->pszFilename);
        return nullptr;
    }
    c.path = archive;
    GDALDataset *ds = CMIRDataset::Open(c, false, info->papszOpenOptions);
    if (ds)
        ds->GDALDataset::SetMetadataItem("TILE_FILE", info->pszFilename);
    return ds;
}

/* Cheap and strict: the CMIR: prefix, a .cmirq/.cmirt key file, or a .mat file that starts as an HDF5 file (plain, or
 * MATLAB v7.3 with the HDF5 superblock after the 512-byte header). Other HDF5 files stay with
 * GDAL's HDF5 driver. */
static int CMIRIdentify(GDALOpenInfo *info)
{
    if (STARTS_WITH_CI(info->pszFilename, "CMIR:") || KeyFileKind(info))
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
    if (const char kind = KeyFileKind(info))
        return OpenKeyFile(info, kind);
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
    d->SetMetadataItem(GDAL_DMD_EXTENSIONS, "mat cmirq cmirt");
    d->SetMetadataItem(GDAL_DMD_HELPTOPIC, DRIVER_HELP);
    d->SetMetadataItem(GDAL_DMD_CONNECTION_PREFIX, "CMIR:");
    d->SetMetadataItem(GDAL_DMD_SUBDATASETS, "YES");
    d->SetMetadataItem(GDAL_DCAP_VIRTUALIO, "YES");
    d->SetMetadataItem(GDAL_DMD_OPENOPTIONLIST, OpenOptionList().c_str());
    d->SetMetadataItem("CMIR_SYNTAX", SYNTAX);
    d->SetMetadataItem("CMIR_VERSION", cmir_version());
    g_cache = new QueryCache();
    d->pfnUnloadDriver = [](GDALDriver *) {
        g_cache->Close();
        delete g_cache;
        g_cache = nullptr;
    };
    d->pfnIdentify = CMIRIdentify;
    d->pfnOpen = CMIROpen;
    GetGDALDriverManager()->RegisterDriver(d);
}
