"""How a synthetic capture looks and is shot: materials, lights, world, background
plate, floor, and the camera that frames the person.

Everything is built from settings dataclasses, deterministically (no randomness but
``LookSettings.seed``, no downloads): the same settings give the same scene.

Directions use one azimuth convention, in the Z-up world seen from above: azimuth 0
is the -Y side (in front of a body facing -Y, as Anny and Blender's front view),
positive angles turn counter-clockwise towards +X. Elevations are degrees above the
horizon. Colours are scene-linear RGB in [0, 1].

Objects made here (lights, floor) live in the collection ``LOOK_COLLECTION``;
``apply_look`` replaces them, so calling it again restyles the scene instead of
adding more lights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..base import GarmentError
from ..scene_capture.animation import ActionWriter
from ..scene_capture.camera import extrinsics, intrinsics, render_size
from ..scene_capture.timeline import frame_restored, set_frame
from .render import MASK_AOV, MASK_AOV_NODE

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]

LOOK_COLLECTION = "Synthetic Look"
"""Collection holding the lights and floor ``apply_look`` creates."""
BACKGROUNDS = ("plain", "gradient", "noise")
CAMERA_MODES = ("static", "orbit")
FLOOR_SIZE_M = 40.0
"""Edge of the square floor plane: far beyond any frame's view."""


@dataclass(frozen=True)
class LightingSettings:
    """Sun + area light + world colour (no HDRI).

    Fields:
        sun_strength: sun irradiance (Blender's Strength, W/m^2); 0 = no sun.
        sun_elevation_deg, sun_azimuth_deg: where the sun is (see the module doc).
        sun_angle_deg: the sun's angular diameter (softness of its shadows).
        sun_color: RGB.
        area_strength_w: area light power in watts; 0 = none.
        area_size_m: edge of the square area light.
        area_distance_m: its distance from the body's centre, which it faces.
        area_elevation_deg, area_azimuth_deg: where it is.
        world_color, world_strength: ambient light from every direction.
    """

    sun_strength: float = 3.0
    sun_elevation_deg: float = 50.0
    sun_azimuth_deg: float = 35.0
    sun_angle_deg: float = 5.0
    sun_color: RGB = (1.0, 0.96, 0.9)
    area_strength_w: float = 180.0
    area_size_m: float = 2.0
    area_distance_m: float = 3.0
    area_elevation_deg: float = 25.0
    area_azimuth_deg: float = -45.0
    world_color: RGB = (0.45, 0.5, 0.6)
    world_strength: float = 0.35


LIGHTING_PRESETS: dict[str, LightingSettings] = {
    # key sun front-right, soft fill front-left, dim cool ambient
    "studio": LightingSettings(),
    # strong warm sun, bluish sky, no fill
    "outdoor": LightingSettings(sun_strength=4.5, sun_elevation_deg=60.0,
                                sun_azimuth_deg=60.0, sun_angle_deg=1.0,
                                sun_color=(1.0, 0.93, 0.82), area_strength_w=0.0,
                                world_color=(0.5, 0.65, 0.95), world_strength=0.6),
    # no hard shadows: big area light and bright ambient
    "overcast": LightingSettings(sun_strength=0.6, sun_angle_deg=30.0,
                                 area_strength_w=500.0, area_size_m=4.0,
                                 area_azimuth_deg=10.0, area_elevation_deg=35.0,
                                 world_color=(0.8, 0.82, 0.85), world_strength=0.55),
}
"""Named lighting set-ups for ``LookSettings.lighting``."""


@dataclass(frozen=True)
class LookSettings:
    """Materials, lights and background of a synthetic capture.

    Fields:
        texture_path: the fabric's image (e.g. the prepare step's texture.png), mapped
            on the garment's active UV map, read as sRGB; None = plain ``fabric_color``.
        fabric_color: the fabric's colour without a texture.
        fabric_roughness: Principled roughness of the fabric, [0, 1].
        fabric_sheen: Principled sheen weight (the soft rim of cloth fibres), [0, 1].
        skin_tone: the body's base colour (a hair-less, uniform skin).
        skin_roughness: Principled roughness of the skin.
        lighting: a name in ``LIGHTING_PRESETS`` or a LightingSettings.
        background: the plate seen behind the person: "plain" (``background_colors[0]``),
            "gradient" (screen-space, ``[1]`` at the bottom to ``[0]`` at the top) or
            "noise" (procedural noise between the two colours, fixed to the world's
            directions, so it moves as the camera turns; the seed shifts it). The
            plate is seen by camera rays only; it does not light the scene.
        background_colors: the plate's two colours.
        noise_scale: feature frequency of the noise plate (Noise Texture Scale).
        floor: a floor plane under the body's feet. It grounds the person with
            shadows but is the costliest part of a render: it fills half the image
            with lit, shadowed surface (measured at 512^2, 16 spp, 2 CPU cores: about
            4x the render time of the same frame without it).
        floor_height_m: the floor's world z; None = the body's lowest point at the
            scene's current frame (set a frame where it stands on the floor).
        floor_color, floor_roughness: its material.
        seed: varies the noise plate and, by up to ``light_jitter_deg``, the azimuth
            of the lights; the same seed gives the same look.
        light_jitter_deg: largest azimuth change the seed applies to the lights.
    """

    texture_path: str | None = None
    fabric_color: RGB = (0.55, 0.12, 0.1)
    fabric_roughness: float = 0.85
    fabric_sheen: float = 0.4
    skin_tone: RGB = (0.5, 0.31, 0.22)
    skin_roughness: float = 0.5
    lighting: str | LightingSettings = "studio"
    background: str = "gradient"
    background_colors: tuple[RGB, RGB] = ((0.55, 0.58, 0.62), (0.12, 0.13, 0.15))
    noise_scale: float = 3.0
    floor: bool = True
    floor_height_m: float | None = None
    floor_color: RGB = (0.3, 0.28, 0.26)
    floor_roughness: float = 0.9
    seed: int = 0
    light_jitter_deg: float = 20.0


@dataclass(frozen=True)
class CameraSettings:
    """A camera that keeps the whole person in view on every frame.

    Fields:
        mode: "static" (one pose for the clip) or "orbit" (circles the person).
        orbit_deg: how far an orbit turns over the clip (its sign the direction:
            positive = counter-clockwise seen from above).
        azimuth_deg: the camera's direction from the person at the first frame,
            before the seed's jitter.
        azimuth_jitter_deg: the seed moves the start azimuth by up to this much (0 =
            exactly ``azimuth_deg``), so captures with other seeds see other sides.
        seed: seeds that jitter; the same seed gives the same camera.
        height_m: camera height above the centre of the person's bounding box (the
            point it looks at).
        margin: fraction of the image's half-width and half-height left free around
            the person on each side, in [0, 0.9).
        focal_mm: lens focal length.
        sensor_mm: sensor width (horizontal fit).
    """

    mode: str = "static"
    orbit_deg: float = 90.0
    azimuth_deg: float = 0.0
    azimuth_jitter_deg: float = 15.0
    seed: int = 0
    height_m: float = 0.3
    margin: float = 0.1
    focal_mm: float = 50.0
    sensor_mm: float = 36.0


# --- look -------------------------------------------------------------------------

def apply_look(scene, garment, body, settings: LookSettings) -> None:
    """Style ``scene``: fabric on ``garment``, skin on ``body``, lights, world, floor.

    Args:
        scene: the scene (its world is replaced).
        garment: the garment mesh object (with a UV map when a texture is used); its
            materials are replaced by one fabric material (shaded smooth).
        body: the body's mesh object, or its armature (then every mesh parented to
            it); materials replaced by one skin material.
        settings: the look.
    Raises:
        GarmentError: bad settings, a garment/body that is not what is expected, an
            unreadable texture.
    """
    lighting = _check_look(settings)
    if garment is None or garment.type != "MESH":
        raise GarmentError(f"Garment {_name(garment)} is not a mesh object")
    meshes = body_meshes(body)
    rng = np.random.default_rng(settings.seed)
    jitter = float(rng.uniform(-1.0, 1.0)) * settings.light_jitter_deg
    noise_offset = float(rng.uniform(0.0, 100.0))

    fabric = _fabric_material(garment, settings)
    _set_material(garment, fabric)
    if hasattr(garment.data, "shade_smooth"):  # smooth normals, like the backend's renders
        garment.data.shade_smooth()
    skin = _principled_material("Synthetic Skin", settings.skin_tone, settings.skin_roughness)
    for mesh in meshes:
        _set_material(mesh, skin)

    collection = _look_collection(scene)
    depsgraph = set_frame(scene, scene.frame_current)
    points = np.concatenate([_world_vertices(m, depsgraph) for m in meshes])
    centre = 0.5 * (points.min(0) + points.max(0))
    _add_lights(collection, lighting, centre, jitter)
    if settings.floor:
        height = settings.floor_height_m
        _add_floor(collection, float(points[:, 2].min()) if height is None else height,
                   settings)
    scene.world = _world(settings, lighting, noise_offset)
    log.info("look: %s lighting, %s background, floor %s, seed %d",
             settings.lighting if isinstance(settings.lighting, str) else "custom",
             settings.background, "on" if settings.floor else "off", settings.seed)


def body_meshes(body) -> list:
    """The mesh objects of ``body``: itself (a mesh) or the meshes parented to it (an
    armature). GarmentError if there are none."""
    if body is not None and body.type == "MESH":
        return [body]
    if body is not None and body.type == "ARMATURE":
        meshes = sorted((c for c in body.children_recursive if c.type == "MESH"),
                        key=lambda o: o.name)
        if meshes:
            return meshes
        raise GarmentError(f"Body rig '{body.name}' has no mesh parented to it")
    raise GarmentError(f"Body {_name(body)} is not a mesh or an armature object")


def _check_look(s: LookSettings) -> LightingSettings:
    if isinstance(s.lighting, str):
        if s.lighting not in LIGHTING_PRESETS:
            raise GarmentError(f"Unknown lighting preset '{s.lighting}'; expected one of "
                               f"{', '.join(LIGHTING_PRESETS)}")
        lighting = LIGHTING_PRESETS[s.lighting]
    else:
        lighting = s.lighting
    if s.background not in BACKGROUNDS:
        raise GarmentError(f"Unknown background '{s.background}'; expected one of "
                           f"{', '.join(BACKGROUNDS)}")
    for name in ("fabric_roughness", "fabric_sheen", "skin_roughness", "floor_roughness"):
        value = getattr(s, name)
        if not 0.0 <= value <= 1.0:
            raise GarmentError(f"Look setting {name} must be in [0, 1], got {value}")
    colors = {"fabric_color": s.fabric_color, "skin_tone": s.skin_tone,
              "floor_color": s.floor_color, "background_colors[0]": s.background_colors[0],
              "background_colors[1]": s.background_colors[1],
              "lighting.sun_color": lighting.sun_color,
              "lighting.world_color": lighting.world_color}
    for name, color in colors.items():
        if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
            raise GarmentError(f"Look setting {name} must be 3 values in [0, 1], got {color}")
    for name in ("sun_strength", "area_strength_w", "world_strength", "area_size_m",
                 "area_distance_m"):
        if getattr(lighting, name) < 0:
            raise GarmentError(f"Lighting setting {name} must be >= 0, got "
                               f"{getattr(lighting, name)}")
    if s.texture_path is not None and not Path(s.texture_path).is_file():
        raise GarmentError(f"Fabric texture {s.texture_path} does not exist")
    return lighting


def _fabric_material(garment, s: LookSettings):
    material = _principled_material("Synthetic Fabric", s.fabric_color, s.fabric_roughness)
    tree = material.node_tree
    bsdf = tree.nodes["Principled BSDF"]
    bsdf.inputs["Sheen Weight"].default_value = s.fabric_sheen
    bsdf.inputs["Sheen Roughness"].default_value = 0.5
    bsdf.inputs["Specular IOR Level"].default_value = 0.25  # cloth: little specular
    if s.texture_path is not None:
        uv_layers = garment.data.uv_layers
        if not uv_layers:
            raise GarmentError(f"Garment '{garment.name}' has no UV map, which the fabric "
                               f"texture {s.texture_path} needs")
        image = bpy.data.images.load(str(s.texture_path), check_existing=True)
        image.reload()  # the file may have changed since it was first loaded
        if min(image.size) <= 0:
            raise GarmentError(f"Fabric texture {s.texture_path} cannot be read")
        image.colorspace_settings.name = "sRGB"
        uv = tree.nodes.new("ShaderNodeUVMap")
        uv.uv_map = uv_layers.active.name
        tex = tree.nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.interpolation = "Linear"
        tex.extension = "EXTEND"  # no wrap-around bleeding at the panel borders
        tree.links.new(uv.outputs["UV"], tex.inputs["Vector"])
        tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    aov = tree.nodes.new("ShaderNodeOutputAOV")
    aov.name = aov.label = MASK_AOV_NODE
    aov.aov_name = MASK_AOV
    aov.inputs["Value"].default_value = 1.0
    return material


def _principled_material(name: str, color: RGB, roughness: float):
    """A new material: one Principled BSDF (no subsurface: noisy at few samples)."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender < 5.0
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.name = "Principled BSDF"
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    material.diffuse_color = (*color, 1.0)  # viewport colour
    return material


def _set_material(obj, material) -> None:
    """Make ``material`` the object's only material (on its mesh data)."""
    obj.data.materials.clear()
    obj.data.materials.append(material)
    for slot in obj.material_slots:
        slot.link = "DATA"


def _look_collection(scene):
    """An empty ``LOOK_COLLECTION`` in ``scene`` (a previous look's objects removed)."""
    collection = bpy.data.collections.get(LOOK_COLLECTION)
    if collection is None:
        collection = bpy.data.collections.new(LOOK_COLLECTION)
    old = list(collection.objects)
    # the lights' and floor's data are ours alone: removed with their objects
    bpy.data.batch_remove(old + [o.data for o in old if o.data is not None])
    if collection.name not in scene.collection.children:
        scene.collection.children.link(collection)
    return collection


def _add_lights(collection, lighting: LightingSettings, centre: np.ndarray,
                jitter_deg: float) -> None:
    if lighting.sun_strength > 0:
        sun = bpy.data.lights.new("Synthetic Sun", "SUN")
        sun.energy = lighting.sun_strength
        sun.angle = math.radians(lighting.sun_angle_deg)
        sun.color = lighting.sun_color
        direction = direction_from(lighting.sun_azimuth_deg + jitter_deg,
                                   lighting.sun_elevation_deg)
        obj = bpy.data.objects.new("Synthetic Sun", sun)
        obj.location = centre + 10.0 * direction
        obj.rotation_euler = euler_looking(-direction)
        collection.objects.link(obj)
    if lighting.area_strength_w > 0:
        area = bpy.data.lights.new("Synthetic Area", "AREA")
        area.energy = lighting.area_strength_w
        area.size = lighting.area_size_m
        direction = direction_from(lighting.area_azimuth_deg + jitter_deg,
                                   lighting.area_elevation_deg)
        obj = bpy.data.objects.new("Synthetic Area", area)
        obj.location = centre + lighting.area_distance_m * direction
        obj.rotation_euler = euler_looking(-direction)
        collection.objects.link(obj)


def _add_floor(collection, height: float, s: LookSettings) -> None:
    half = 0.5 * FLOOR_SIZE_M
    mesh = bpy.data.meshes.new("Synthetic Floor")
    mesh.from_pydata([(-half, -half, height), (half, -half, height), (half, half, height),
                      (-half, half, height)], [], [(0, 1, 2, 3)])
    mesh.materials.append(_principled_material("Synthetic Floor", s.floor_color,
                                               s.floor_roughness))
    collection.objects.link(bpy.data.objects.new("Synthetic Floor", mesh))


def _world(s: LookSettings, lighting: LightingSettings, noise_offset: float):
    """A world: ambient light for every ray but camera rays, which see the plate."""
    world = bpy.data.worlds.new("Synthetic World")
    if world.node_tree is None:  # Blender < 5.0
        world.use_nodes = True
    tree = world.node_tree
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    ambient = nodes.new("ShaderNodeBackground")
    ambient.inputs["Color"].default_value = (*lighting.world_color, 1.0)
    ambient.inputs["Strength"].default_value = lighting.world_strength
    plate = nodes.new("ShaderNodeBackground")
    plate.inputs["Strength"].default_value = 1.0
    top, bottom = s.background_colors
    if s.background == "plain":
        plate.inputs["Color"].default_value = (*top, 1.0)
    else:
        coords = nodes.new("ShaderNodeTexCoord")
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.inputs["A"].default_value = (*bottom, 1.0)
        mix.inputs["B"].default_value = (*top, 1.0)
        if s.background == "gradient":  # screen space: bottom -> top of the image
            xyz = nodes.new("ShaderNodeSeparateXYZ")
            links.new(coords.outputs["Window"], xyz.inputs["Vector"])
            links.new(xyz.outputs["Y"], mix.inputs["Factor"])
        else:  # noise on the view direction (Generated = direction in a world)
            noise = nodes.new("ShaderNodeTexNoise")
            noise.noise_dimensions = "4D"
            noise.inputs["Scale"].default_value = s.noise_scale
            noise.inputs["Detail"].default_value = 4.0
            noise.inputs["W"].default_value = noise_offset
            links.new(coords.outputs["Generated"], noise.inputs["Vector"])
            stretch = nodes.new("ShaderNodeMapRange")  # noise clusters around 0.5
            stretch.inputs["From Min"].default_value = 0.35
            stretch.inputs["From Max"].default_value = 0.65
            stretch.clamp = True
            links.new(noise.outputs["Fac"], stretch.inputs["Value"])
            links.new(stretch.outputs["Result"], mix.inputs["Factor"])
        links.new(mix.outputs["Result"], plate.inputs["Color"])
    path = nodes.new("ShaderNodeLightPath")
    shader = nodes.new("ShaderNodeMixShader")
    links.new(path.outputs["Is Camera Ray"], shader.inputs["Fac"])
    links.new(ambient.outputs["Background"], shader.inputs[1])
    links.new(plate.outputs["Background"], shader.inputs[2])
    out = nodes.new("ShaderNodeOutputWorld")
    links.new(shader.outputs["Shader"], out.inputs["Surface"])
    return world


# --- camera -----------------------------------------------------------------------

def place_camera(scene, frames, body, garment=None, settings: CameraSettings | None = None,
                 name: str = "Synthetic Camera", min_distance_m: float | None = None):
    """Create the scene camera framing the person (with margin) on every frame.

    Args:
        scene: its render resolution sets the image's aspect ratio (set it first).
        frames: Blender frame numbers of the clip, increasing.
        body: (T, V, 3) world vertices per frame (metres; T = len(frames)), or the body
            object (mesh, or armature with parented meshes) evaluated at each frame.
        garment: optional garment object, also kept in view (evaluated per frame).
        settings: static or orbit, lens, height, margin; default CameraSettings().
        name: the camera object's name.
        min_distance_m: the camera stays at least this far (horizontally) from the
            centre it looks at, e.g. another camera's distance so that both see the
            person at the same scale; None = as close as the framing allows.
    Returns:
        The camera object, now ``scene.camera`` (a camera object already called
        ``name`` is replaced, with its data and animation). A static camera has one
        pose; an orbit is keyed at every frame (linear), the azimuth turning evenly
        from the (jittered) ``azimuth_deg`` by ``orbit_deg`` around the centre of
        the clip's bounding box, at one distance that fits every frame.
    Raises:
        GarmentError: bad settings or inputs.
    """
    frames = [int(f) for f in frames]
    settings = settings if settings is not None else CameraSettings()
    _check_camera_settings(settings, frames)
    points = frame_points(scene, frames, body, garment)          # list of (N_t, 3)
    stacked = np.concatenate(points)
    lo, hi = stacked.min(0), stacked.max(0)
    target = 0.5 * (lo + hi)

    _remove_camera(name)
    data = bpy.data.cameras.new(name)
    data.lens = settings.focal_mm
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = settings.sensor_mm
    data.clip_start = 0.05
    data.clip_end = 1000.0
    cam = bpy.data.objects.new(name, data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    K = intrinsics(scene, data)
    size = render_size(scene)

    start = start_azimuth(settings)
    if settings.mode == "static":
        azimuths = np.full(len(frames), start, np.float64)
        views = [stacked]
    else:
        span = max(frames[-1] - frames[0], 1)
        azimuths = start + settings.orbit_deg * (
            np.asarray(frames, np.float64) - frames[0]) / span
        views = points
    distance = 0.0
    view_azimuths = azimuths[:1] if settings.mode == "static" else azimuths
    for pts, azimuth in zip(views, view_azimuths, strict=True):
        distance = max(distance, _fit_distance(pts, target, azimuth, settings, K, size))
    if min_distance_m is not None:
        distance = max(distance, float(min_distance_m))
    for _ in range(20):  # the common distance fits every view (checked, widened if not)
        if all(_fits(pts, _pose(target, az, distance, settings.height_m), K, size,
                     0.5 * settings.margin)
               for pts, az in zip(views, view_azimuths, strict=True)):
            break
        distance *= 1.05
    else:
        raise GarmentError(f"Camera '{name}': could not frame the person on every frame "
                           "(is the clip's bounding box degenerate?)")

    poses = [_pose(target, az, distance, settings.height_m) for az in azimuths]
    if settings.mode == "static":
        cam.location, euler = poses[0]
        cam.rotation_euler = euler
    else:
        locations = np.array([p[0] for p in poses])
        eulers = np.array([p[1] for p in poses])
        eulers[:, 2] = np.unwrap(eulers[:, 2])  # no 360-degree jumps between keys
        writer = ActionWriter(cam, name + " Orbit")
        f = np.asarray(frames, np.float64)
        for i in range(3):
            writer.add_curve("location", i, f, locations[:, i], group="Object Transforms")
            writer.add_curve("rotation_euler", i, f, eulers[:, i], group="Object Transforms")
    log.info("camera '%s': %s from azimuth %.1f deg, %.2f m from the person's centre, "
             "%g mm", name, settings.mode, start, distance, settings.focal_mm)
    return cam


def start_azimuth(settings: CameraSettings) -> float:
    """The azimuth (degrees) ``place_camera`` puts a camera of ``settings`` at on the
    first frame: ``azimuth_deg`` moved by the seed's jitter."""
    rng = np.random.default_rng(settings.seed)
    return settings.azimuth_deg + float(rng.uniform(-1.0, 1.0)) * settings.azimuth_jitter_deg


def _remove_camera(name: str) -> None:
    old = bpy.data.objects.get(name)
    if old is None:
        return
    if old.type != "CAMERA":
        raise GarmentError(f"Object '{name}' exists and is a {old.type.lower()}, not a "
                           "camera; rename it or choose another camera name")
    anim = old.animation_data
    blocks = [old, old.data] + ([anim.action] if anim and anim.action else [])
    bpy.data.batch_remove(blocks)


def direction_from(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector (3,) pointing from the origin towards ``azimuth``/``elevation``."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el),
                     math.sin(el)])


def euler_looking(direction) -> tuple[float, float, float]:
    """XYZ Euler angles (radians) that point a camera or light (local -Z) along
    ``direction``, its local +Y up (no roll)."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    return (math.atan2(math.hypot(d[0], d[1]), -d[2]), 0.0, math.atan2(-d[0], d[1]))


def _pose(target: np.ndarray, azimuth_deg: float, distance: float, height: float):
    """(location (3,), euler (3,)) of a camera ``distance`` metres from ``target``
    horizontally at ``azimuth_deg``, ``height`` above it, looking at it."""
    horizontal = direction_from(azimuth_deg, 0.0)
    location = target + distance * horizontal + np.array([0.0, 0.0, height])
    return location, np.array(euler_looking(target - location))


def _opencv_rotation(euler) -> np.ndarray:
    """World-to-camera R (OpenCV axes) of a camera with these XYZ Euler angles."""
    ax, ay, az = euler
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx  # Blender's XYZ order: X first
    return extrinsics(m)[0]


def _fit_distance(points, target, azimuth_deg, s: CameraSettings, K, size) -> float:
    """Horizontal distance at which ``points`` fill the image up to the margin.

    For a fixed orientation the distance along the viewing axis that fits every
    point is closed-form (each point needs z >= |x| / tan(half fov)); the orientation
    depends on the distance through the fixed height, hence a few fixed-point steps.
    """
    width, height = size
    tan_x = (1.0 - s.margin) * (0.5 * width) / K[0, 0]
    tan_y = (1.0 - s.margin) * (0.5 * height) / K[1, 1]
    extent = float(np.linalg.norm(points.max(0) - points.min(0)))
    distance = max(extent, 0.5)
    for _ in range(50):
        location, euler = _pose(target, azimuth_deg, distance, s.height_m)
        R = _opencv_rotation(euler)
        cam = (points - location) @ R.T
        shift = float(np.max(np.maximum(np.abs(cam[:, 0]) / tan_x,
                                        np.abs(cam[:, 1]) / tan_y) - cam[:, 2]))
        forward = R[2]
        moved = location - shift * forward  # back (or forward) along the viewing axis
        new = float(np.hypot(*(moved - target)[:2]))
        if abs(new - distance) < 1e-5:
            return new
        distance = max(new, 1e-3)
    return distance


def _fits(points, pose, K, size, margin: float) -> bool:
    """Whether every point projects inside the image, ``margin`` of the half-size in."""
    location, euler = pose
    cam = (points - location) @ _opencv_rotation(euler).T
    if (cam[:, 2] <= 0.05).any():
        return False
    u = K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2]
    v = K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]
    width, height = size
    mx, my = margin * 0.5 * width, margin * 0.5 * height
    return bool((u >= mx - 0.5).all() and (u <= width - 0.5 - mx).all()
                and (v >= my - 0.5).all() and (v <= height - 0.5 - my).all())


def _check_camera_settings(s: CameraSettings, frames) -> None:
    if s.mode not in CAMERA_MODES:
        raise GarmentError(f"Unknown camera mode '{s.mode}'; expected one of "
                           f"{', '.join(CAMERA_MODES)}")
    if s.azimuth_jitter_deg < 0:
        raise GarmentError(f"Camera azimuth_jitter_deg must be >= 0, got "
                           f"{s.azimuth_jitter_deg}")
    if not 0.0 <= s.margin < 0.9:
        raise GarmentError(f"Camera margin must be in [0, 0.9), got {s.margin}")
    if s.focal_mm <= 0 or s.sensor_mm <= 0:
        raise GarmentError(f"Camera focal length and sensor width must be > 0, got "
                           f"{s.focal_mm} mm and {s.sensor_mm} mm")
    if not frames:
        raise GarmentError("No frames to place the camera for: the frame list is empty")
    if any(b <= a for a, b in zip(frames, frames[1:], strict=False)):
        raise GarmentError(f"Camera frames must be strictly increasing, got {frames}")


def frame_points(scene, frames, body, garment) -> list[np.ndarray]:
    """World points to keep in view, one (N, 3) float64 array per frame."""
    per_frame: list[list[np.ndarray]] = [[] for _ in frames]
    objects = [] if garment is None else [garment]
    if isinstance(body, (np.ndarray, list, tuple)):
        vertices = np.asarray(body, np.float64)
        if vertices.ndim != 3 or vertices.shape[0] != len(frames) or vertices.shape[2] != 3:
            raise GarmentError(f"Body vertices must have shape (T, V, 3) with T = "
                               f"{len(frames)} frames, got {vertices.shape}")
        if not np.isfinite(vertices).all():
            raise GarmentError("Body vertices contain non-finite values")
        for t in range(len(frames)):
            per_frame[t].append(vertices[t])
    else:
        objects = body_meshes(body) + objects
    if objects:
        with frame_restored(scene):
            for t, frame in enumerate(frames):
                depsgraph = set_frame(scene, frame)
                per_frame[t] += [_world_vertices(o, depsgraph) for o in objects]
    points = [np.concatenate(p) for p in per_frame]
    for frame, p in zip(frames, points, strict=True):
        if len(p) == 0:
            raise GarmentError(f"Nothing to frame at frame {frame}: the body has no vertices")
    return points


def _world_vertices(obj, depsgraph) -> np.ndarray:
    """(V, 3) float64 world positions of ``obj``'s evaluated mesh (modifiers applied)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(3 * len(mesh.vertices), np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    m = np.array(evaluated.matrix_world, np.float64)
    return co.reshape(-1, 3).astype(np.float64) @ m[:3, :3].T + m[:3, 3]


def _name(obj) -> str:
    return "(none)" if obj is None else f"'{obj.name}'"
