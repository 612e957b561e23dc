<?php

namespace App\Http\Controllers;

use Illuminate\Http\Request;
use Illuminate\Support\Facades\Storage;

class AvatarController extends Controller
{
    public function update(Request $request)
    {
        $request->validate(['avatar' => 'required|image|mimes:jpg,png|max:2048']);
        $path = $request->file('avatar')->store('avatars', 'public');
        $request->user()->update(['avatar_path' => $path]);

        return back();
    }

    public function show(string $id)
    {
        return Storage::disk('public')->download('avatars/' . basename($id));
    }
}
